"""Operations: metrics, health, logs, GC tuning, Redis memory, the request body limit."""
