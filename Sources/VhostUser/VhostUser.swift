// VhostUser
