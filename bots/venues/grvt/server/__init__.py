"""Our local GRVT-compatible exchange (REST and websockets, fault injection) for tests and paper/live
runs against `exchange.base_url`; `app.GrvtSimServer` is the entry point (`mmfleet sim serve`)."""
