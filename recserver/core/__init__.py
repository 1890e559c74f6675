"""The ground floor every subsystem builds on: strict config models, domain errors, Redis URL
resolution, durable-write helpers and the one background-thread abstraction."""
