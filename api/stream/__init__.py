"""One client's stream: opening it, catch-up, the delivery decision, live delivery, the SSE
response, history and the SQL archive."""
