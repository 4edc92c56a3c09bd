"""A stand-in for PortaBilling (MR100+), as far as this service sees it: `python -m simulators.portabilling`.

It serves on PORTABILLING_SIM_HOST:PORTABILLING_SIM_PORT (127.0.0.1:8200):

- the JSON API subset provisioning reads (`simulators.portabilling.rest`): `Session/login`, account, customer
  and product info, custom fields, a customer's account list; faults as PortaBilling
  answers them (HTTP 500 with `faultcode`: `Server.Session.auth_failed`,
  `Server.Session.check_auth.auth_failed`, `Client.validation`); an unknown entity answers `{}`;
- the ESPF status API (`simulators.portabilling.status`): the service's provisioning statuses, recorded;
- ESPF events (`simulators.portabilling.events`): each admin change emits the events PortaBilling would and
  delivers them to PORTABILLING_SIM_EVENT_URL with HTTP basic ESPF_USERNAME/ESPF_PASSWORD, in creation
  order, a few at once (PORTABILLING_SIM_EVENT_CONCURRENCY), retried with backoff until answered 200,
  every PORTABILLING_SIM_REPEAT_EVERYth one twice on purpose, the coalesced types coalesced while
  queued, unpaced unless PORTABILLING_SIM_EVENTS_PER_SECOND is set;
- a control API under `/_sim/` (`simulators.portabilling.admin`, `simulators.portabilling.control`): act as an
  administrator (products, customers, accounts, wallet top-ups and charges), read the statuses and the
  events' deliveries, hold and release deliveries (in order or reversed), redeliver an event, inject
  faults (`api` down or slow, `status_api` down, tokens revoked or refused), read counts. It has no auth,
  like the CMMS simulator's: it listens on loopback.

The API user it accepts is PORTABILLING_LOGIN/PORTABILLING_PASSWORD, the same variables (and
development defaults) the service logs in with, so one `.env` drives both.

Simplified, on purpose:
- State lives in memory (PORTABILLING_SIM_STATE=memory is the only kind): a restart starts empty,
  with i_event, i_account, i_customer and i_product counting from their first values again.
- One API user; tokens are opaque and expire after PORTABILLING_SIM_TOKEN_TTL_SECONDS; the session id
  and refresh token are answered but never used (the client logs in again instead).
- Only the fields provisioning reads exist: no billing, rating, invoices, DIDs or add-on products.
  The account's custom fields are one, the IMEI (PORTABILLING_IMEI_FIELD); a customer's are whatever
  the admin sets (`profileName`, `domain`). Wallets are the messaging service's, one entry per top-up,
  seen only through their events (a charge spending the last live unit, or the last live units
  lapsing, emits `Account/Service/Msg/QuotaExceeded`; a top-up `Account/AvailableFundsAppear`): the JSON
  API has no wallet method, as no public source shows one.
- Editing a product emits nothing, as in PortaBilling: its accounts are not told.
- An account's activation (bill_status I → O, `PATCH {"inactive": false}`) emits `Subscriber/Updated`
  only; a closed account takes no further change, and a customer is deleted only once its accounts
  are all closed.
- Events carry `i_event` and `i_account` (or `i_customer`) only, as strings.
"""
