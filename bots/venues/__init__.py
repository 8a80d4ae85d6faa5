"""One package per venue, with the file set the next venue copies from `grvt`: `config` (a `base.Venue`:
environments, symbol rule, credential names; the settings read it, so it loads no SDK), `endpoints`
(hosts, `exchange.base_url`), `client` (the SDK client: transport, errors, log masking), `parse` (wire
JSON to our types), `data` (public market data, for paper mode), `execution` (the `Exchange` protocol
for live mode; it declares its `capabilities` and reconciles through the shared
`bots.exchange.reconcile`) and `server/` (a local venue-compatible server for tests). A new venue is
named in `registry` and built in `bots.exchange.factory`."""
