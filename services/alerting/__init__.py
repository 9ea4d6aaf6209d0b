"""Alerting (docs/alerting.md): the rules file (rules.py, loading.py, catalogue.py, fields.py), the
pure state machine with silences and routing (state.py, silences.py, routes.py), the engine that
evaluates the rules from the store every round on the collector's leader (engine.py, evaluate.py)
and queues due notifications (notifier.py, notify.py) into the delivery queue (delivery.py,
senders.py, notification.py); the engine's documents (store.py) and the history of changes
(history.py), which the /alerts page, the API and the `alerts` export read."""
