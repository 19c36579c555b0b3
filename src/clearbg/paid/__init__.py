"""The paid-call service: every path that delivers a cut-out for money goes through it
(``/v1/removebg``, the Monitor gateway, each bulk image). It owns who pays, the throttles, the
credit reservation and its settlement or refund, the idempotency record, the usage record and
the engine's limit. Routes parse the request and render the answer; no HTTP types in here."""
