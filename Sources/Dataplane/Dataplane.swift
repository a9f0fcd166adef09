// Dataplane
