"""The Monitor gateway's own parts: the ``image`` field (file, URL, base64), fetching URLs
without becoming a proxy, the upstreams (local engine or HTTP) and anonymous use."""
