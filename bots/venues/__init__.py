"""One package per venue, each with the same file set (`grvt` is the one to copy): `config` (the venue's
environments, symbol rule and credential names, read by the settings), `endpoints`, `client`, `parse`,
`data` (public market data), `execution` (the `Exchange` protocol) and `server/` (a local
venue-compatible server for tests). `registry` names them for the settings."""
