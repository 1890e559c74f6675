"""The behavioural graph engine: events -> deduplicated edges -> compact snapshots -> walks."""
