"""Who is calling and what they may see: tokens, authorization, rate limits, the client's
address, sse_token issuance."""
