"""Component ids: one owner, no string literals scattered across layouts and callbacks."""
from __future__ import annotations

__all__ = ["SHELL", "OPS", "EXEC", "LIVE", "BUILDS", "PANEL_IDS", "BUILDS_PANEL_IDS", "ASSETS", "ASSETS_PANEL_IDS",
           "CAPACITY", "CAPACITY_PANEL_IDS", "PARTNERS", "PARTNERS_PANEL_IDS", "PARTNER", "PARTNER_PANEL_IDS", "ALERTS",
           "ALERTS_PANEL_IDS"]


class SHELL:
    URL = "url"
    RANGE = "filter-range"
    DATES = "filter-dates"
    DATES_COL = "filter-dates-col"
    PARTNERS = "filter-partners"
    REFRESH = "filter-refresh"
    TICK = "refresh-tick"
    FILTERS = "filters"
    THEME = "theme"
    THEME_SWITCH = "theme-switch"
    UPDATED = "updated-at"
    BADGE_STORE = "badge-store"
    BADGE_PROMETHEUS = "badge-prometheus"
    BADGE_LIVE = "badge-live"
    BANNER = "outage-banner"
    NAV = "nav-links"
    RT_INBOX = "rt-inbox"  # batches of real-time messages, set by assets/realtime.js
    RT_SUBSCRIPTION = "rt-subscription"  # the partners the socket is subscribed to
    TOASTS = "rt-toasts"
    USER = "user-menu"
    LOGOUT = "logout-button"
    OPEN_BANNER = "open-access-banner"
    ALERT_BANNER = "alert-banner"  # "2 critical alerts firing" on every page
    ALERT_LINK = "alert-banner-link"
    ALERTS_PING = "alerts-ping"  # the inbox batch number of the last alerts message (assets/realtime.js)


class OPS:
    KPIS = "ops-kpis"
    SUCCESS_GAUGE = "ops-success-gauge"
    BUILD_TIME_GAUGE = "ops-build-time-gauge"
    CPU = "ops-cpu"
    MEMORY = "ops-memory"
    DISK = "ops-disk"
    BUILD_RATE = "ops-build-rate"
    HEATMAP = "ops-heatmap"
    STAGES = "ops-stages"
    ASSETS = "ops-assets"
    ASSET_GRID = "ops-asset-grid"
    ASSET_CSV = "ops-asset-csv"
    HTTP_LATENCY = "ops-http-latency"
    HTTP_ERRORS = "ops-http-errors"
    ACTIVE_BUILDS = "kpi-active-builds"


class EXEC:
    KPIS = "exec-kpis"
    TRENDS = "exec-trends"
    HEALTH = "exec-health"
    REVENUE = "exec-revenue"


class LIVE:
    STATE = "live-state"
    RUNNING = "live-running"
    RECENT = "live-recent"
    FEED = "live-feed"
    FEED_STREAMS = "live-feed-streams"
    COUNT = "live-running-count"


class BUILDS:
    SUMMARY = "builds-summary"
    SUMMARY_BOTTLENECK = "builds-summary-bottleneck"
    SUCCESS = "builds-success"
    VOLUME = "builds-volume"
    PERCENTILES = "builds-percentiles"
    BOTTLENECKS = "builds-bottlenecks"
    STAGE_TREND = "builds-stage-trend"
    ANOMALIES = "builds-anomalies"
    SIGNATURES = "builds-signatures"
    SIGNATURE_GRID = "builds-signature-grid"
    SIGNATURE_CSV = "builds-signature-csv"
    GRID = "builds-grid"
    GRID_CSV = "builds-grid-csv"
    EXPORT = "builds-export"
    FORECAST_POLL = "builds-forecast-poll"


class PARTNERS:
    SUMMARY = "partners-summary"
    TIER_MIX = "partners-tier-mix"
    CHANGES = "partners-changes"
    USAGE = "partners-usage"
    QUOTA = "partners-quota"
    RISK_GRID = "partners-risk-grid"
    RISK_CSV = "partners-risk-csv"
    RISK_NOTE = "partners-risk-note"
    TABLE = "partners-table"
    TABLE_CSV = "partners-table-csv"
    EXPORT = "partners-export"


# data-panel attribute values of the Partners page, in order.
PARTNERS_PANEL_IDS = ("partners-summary", "tier-mix", "subscription-changes", "churn-risk", "quota-use",
                      "usage-heatmap", "top-partners")


class PARTNER:
    """The one-partner view (/partners/<id>, or /partners with exactly one partner selected)."""
    ID = "partner-id"  # store: the partner the view is drawn for
    HEADER = "partner-header"
    KPIS = "partner-kpis"
    COMPARISON = "partner-comparison"
    BURN_DOWN = "partner-burn-down"
    USAGE = "partner-usage"
    SIGNATURE_GRID = "partner-signature-grid"
    SIGNATURE_CSV = "partner-signature-csv"
    SIGNATURE_NOTE = "partner-signature-note"
    FAILED_GRID = "partner-failed-grid"
    FAILED_CSV = "partner-failed-csv"
    FAILED_NOTE = "partner-failed-note"
    ASSET_GRID = "partner-asset-grid"
    ASSET_CSV = "partner-asset-csv"
    ASSET_NOTE = "partner-asset-note"
    HISTORY_GRID = "partner-history-grid"
    HISTORY_CSV = "partner-history-csv"


# data-panel attribute values of the one-partner view, in order.
PARTNER_PANEL_IDS = ("partner-header", "partner-kpis", "partner-vs-fleet", "quota-burn-down", "partner-usage",
                     "partner-signatures", "partner-failed-builds", "partner-assets", "subscription-history")


class ASSETS:
    SUMMARY = "assets-summary"
    BY_TYPE = "assets-by-type"
    BY_FORMAT = "assets-by-format"
    BY_DENSITY = "assets-by-density"
    SAVED = "assets-saved"
    FORMAT_TREND = "assets-format-trend"
    FORMAT_MIX = "assets-format-mix"
    TIMES = "assets-times"
    TIME_TREND = "assets-time-trend"
    TABLE_NOTE = "assets-table-note"
    TABLE = "assets-table"
    TABLE_CSV = "assets-table-csv"
    EXPORT = "assets-export"


# data-panel attribute values of the Assets page, in order.
ASSETS_PANEL_IDS = ("asset-summary", "asset-by-type", "asset-by-format", "asset-by-density", "asset-bytes-saved",
                    "asset-format-trend", "asset-format-mix", "asset-processing-times", "asset-processing-trend",
                    "asset-combinations")


class CAPACITY:
    SUMMARY = "capacity-summary"
    CPU = "capacity-cpu"
    MEMORY = "capacity-memory"
    DISK = "capacity-disk"
    NETWORK = "capacity-network"
    INGEST = "capacity-ingest"
    BUILDS = "capacity-builds"
    AVAILABILITY = "capacity-availability"
    LATENCY = "capacity-latency"
    SLA_NOTE = "capacity-sla-note"
    SLA_GRID = "capacity-sla-grid"
    SLA_CSV = "capacity-sla-csv"
    EXPORT = "capacity-export"


# data-panel attribute values of the Capacity page, in order.
CAPACITY_PANEL_IDS = ("capacity-summary", "cpu-trend", "memory-trend", "disk-trend", "network-trend",
                      "ingest-throughput", "build-throughput", "availability-sla", "latency-sla", "sla-buckets")

class ALERTS:
    FEEDBACK = "alerts-feedback"
    RESULT = "alerts-result"  # store: the last action's outcome (closes a dialog, redraws the panels)
    ACTIVE_NOTE = "alerts-active-note"
    ACTIVE_GRID = "alerts-active-grid"
    HISTORY_NOTE = "alerts-history-note"
    HISTORY_GRID = "alerts-history-grid"
    HISTORY_CSV = "alerts-history-csv"
    HISTORY_STATE = "alerts-history-state"
    HISTORY_SEVERITY = "alerts-history-severity"
    HISTORY_RULE = "alerts-history-rule"
    EXPORT = "alerts-export"
    RULES = "alerts-rules"
    SILENCES_NOTE = "alerts-silences-note"
    SILENCES_GRID = "alerts-silences-grid"
    NEW_SILENCE = "alerts-new-silence"
    DELIVERY_NOTE = "alerts-delivery-note"
    DELIVERY_GRID = "alerts-delivery-grid"
    QUEUE_NOTE = "alerts-queue-note"
    QUEUE_GRID = "alerts-queue-grid"
    ACK_MODAL = "alerts-ack-modal"
    ACK_TARGET = "alerts-ack-target"  # store: the id of the alert the dialog acknowledges
    ACK_TITLE = "alerts-ack-title"
    ACK_COMMENT = "alerts-ack-comment"
    ACK_ERROR = "alerts-ack-error"
    ACK_CONFIRM = "alerts-ack-confirm"
    ACK_CANCEL = "alerts-ack-cancel"
    SILENCE_MODAL = "alerts-silence-modal"
    SILENCE_MATCHERS = "alerts-silence-matchers"
    SILENCE_DURATION = "alerts-silence-duration"
    SILENCE_COMMENT = "alerts-silence-comment"
    SILENCE_ERROR = "alerts-silence-error"
    SILENCE_CREATE = "alerts-silence-create"
    SILENCE_CANCEL = "alerts-silence-cancel"


# data-panel attribute values of the Alerts page, in order.
ALERTS_PANEL_IDS = ("alerts-active", "alerts-history", "alerts-rules", "alerts-silences", "alerts-delivery")

# data-panel attribute values of the Build intelligence page, in order.
BUILDS_PANEL_IDS = ("builds-summary", "success-trend", "volume-trend", "duration-percentiles", "stage-bottlenecks",
                    "stage-trend", "anomalies", "failure-signatures", "builds-table")

# data-panel attribute values of the Operations page, in order.
PANEL_IDS = ("kpi-overview", "success-rate-gauge", "build-time-gauge", "cpu-gauge", "memory-gauge",
             "disk-gauge", "build-rate", "duration-heatmap", "stage-durations", "asset-table",
             "http-latency", "http-errors")
