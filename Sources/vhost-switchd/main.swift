print("vhost-switchd")
