"""Command line: `lulupay-analytics serve | seed | simulate | collector | publish-alert | users` (also `python -m app`)."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

import click

from app import logs
from app.settings import Settings

log = logging.getLogger("lulupay")


@contextlib.contextmanager
def _store_url(settings: Settings):
    """Yield a Redis URL: REDIS_URL when set; else the embedded Valkey that another command (e.g.
    `make run`'s `serve`) runs on the data directory; else one started for the block's lifetime."""
    if settings.store_url:
        yield settings.store_url
        return
    from services.store.embedded import EmbeddedValkey, StoreDirInUse, running_url

    url = running_url(settings.data_dir)
    if url:
        _say(f"using the embedded Valkey another process runs on {url} (data in {settings.data_dir.resolve()})")
        yield url
        return
    try:
        embedded = EmbeddedValkey(settings.data_dir).start()
    except StoreDirInUse as exc:  # another process is starting it right now
        raise click.ClickException(f"{exc}; try again in a moment, or set REDIS_URL") from None
    _say(f"embedded Valkey on {embedded.url}, data in {settings.data_dir.resolve()}")
    try:
        yield embedded.url
    finally:
        embedded.stop()
        _say("embedded Valkey stopped")


def _say(message: str) -> None:
    """A status line of a command (not its result): printed as is, or, with JSON logs
    (LULUPAY_LOG_FORMAT=json), logged, so that a log shipper reads one format."""
    if logs.current_format() == "json":
        log.info(message)
    else:
        click.echo(message)


def _wait(stop: threading.Event) -> None:
    """Block until `stop` is set (SIGTERM handler) or Ctrl-C."""
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def _settings_or_exit() -> Settings:
    from pydantic import ValidationError

    from services.alerting.rules import RulesError, load_rules

    try:
        settings = Settings()
        if settings.alert_rules_path is not None:
            load_rules(settings.alert_rules_path)  # an unusable rules file stops every command here
        return settings
    except RulesError as exc:
        raise click.ClickException(f"{exc}\n(LULUPAY_ALERT_RULES; docs/alerting.md)") from None
    except ValidationError as exc:  # one line per problem, without pydantic's decoration
        problems = [f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        raise click.ClickException("; ".join(problems)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False))
def main(log_level: str) -> None:
    """LuluPay Analytics: dashboards, ingest API and metrics for the white-label build service."""
    # text or one JSON object per line (LULUPAY_LOG_FORMAT), on standard error (app/logs.py)
    logs.configure_logging(log_level, logs.configured_log_format())


def _progress_printer(total_hint: int):
    last = [0.0]

    def progress(accepted: int, duplicates: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            _say(f"  seeding: {accepted:,} events written ({duplicates:,} already there) of about {total_hint:,}")
    return progress


@main.command()
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 730))
@click.option("--partners", default=40, show_default=True, type=click.IntRange(1, 10000))
@click.option("--builds-per-day", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
def seed(days: int, partners: int, builds_per_day: int) -> None:
    """Write realistic demo history through the ingest path."""
    from services.container import build_services
    from services.demo.seeding import seed_store

    settings = _settings_or_exit()
    with _store_url(settings) as url:
        services = build_services(settings, redis_url=url)
        report = seed_store(services.store, services.ingest, days=days, partners=partners,
                            builds_per_day=builds_per_day, progress=_progress_printer(days * builds_per_day * 10))
        click.echo(f"seeded {report.accepted:,} events ({report.duplicates:,} duplicates) in {report.seconds:.1f} s")


@main.command()
@click.option("--rate", default=1.0, show_default=True, type=click.FloatRange(0.01, 1000), help="builds started per second")
@click.option("--url", default=None, help="post to a running server's /api/v1/events instead of writing to the store")
@click.option("--token", envvar="LULUPAY_INGEST_TOKEN", default=None, help="bearer token for --url")
def simulate(rate: float, url: str | None, token: str | None) -> None:
    """Produce live build events until stopped (Ctrl-C)."""
    from services.demo.generator import Simulator

    settings = _settings_or_exit()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        if url:
            from services.ingest.client import LuluPayClient
            client = LuluPayClient(url, token=token)
            stack.callback(client.close)
            sink = client.send
        else:
            from services.container import build_services
            store_url = stack.enter_context(_store_url(settings))
            sink = build_services(settings, redis_url=store_url).ingest.ingest_batch
        simulator = Simulator(sink, rate=rate).start()
        stack.callback(simulator.stop)
        _say(f"simulating {rate} builds/s; Ctrl-C to stop")
        _wait(stop)


@main.command()
@click.option("--host", default=None, help="default: LULUPAY_HOST or 127.0.0.1")
@click.option("--port", default=None, type=int, help="default: LULUPAY_PORT or 8050")
@click.option("--workers", default=None, type=click.IntRange(1, 64),
              help="gunicorn workers (default: WEB_CONCURRENCY or gunicorn.conf.py's 2)")
@click.option("--demo/--no-demo", default=False, show_default=True,
              help="seed an empty store with 90 days of history and run the live simulator")
@click.option("--demo-days", default=90, show_default=True, type=click.IntRange(1, 730), help="days of demo history")
@click.option("--demo-builds-per-day", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--sim-rate", default=0.1, show_default=True, type=float, help="builds/s of the demo simulator (0.1 ≈ the history's daily volume)")
@click.option("--access-log/--no-access-log", default=None,
              help="one log line per request (default: LULUPAY_ACCESS_LOG; else off for text logs, on for JSON)")
def serve(host: str | None, port: int | None, workers: int | None, demo: bool, demo_days: int,
          demo_builds_per_day: int, sim_rate: float, access_log: bool | None) -> None:
    """Serve the web app (pages, API, /ws, metrics) with the Procfile's `web:` line (gunicorn,
    gunicorn.conf.py), on the embedded store when REDIS_URL is unset."""
    from app.wsgi import GunicornServer

    settings = _settings_or_exit()
    host = host or settings.host
    port = port or settings.port
    # where this process serves: the collector's availability probe defaults to its /readyz
    settings = settings.model_copy(update={"host": host, "port": port})
    # the demo thread's ingest metrics go where gunicorn's workers write theirs (a directory per
    # port), so /metrics counts them: set before anything here imports prometheus-client
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", _metrics_dir(port))
    # Ctrl-C and SIGTERM while the store starts end it cleanly; once gunicorn runs, they go to it
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stopping = threading.Event()  # set by the first SIGINT / SIGTERM once gunicorn runs
    with contextlib.ExitStack() as stack:
        store_url = stack.enter_context(_store_url(settings))
        web = GunicornServer(host, port, env=_web_environment(settings, store_url, access_log), workers=workers,
                             log_level=logging.getLevelName(logging.getLogger().level))
        web.start()
        stack.callback(web.stop)  # nothing to do when it has ended
        _forward_stop_signals(web, stopping)
        if web.wait_until_serving():
            _say(f"serving on {web.local_url}/")
            if demo and not stopping.is_set():  # after the workers: gunicorn wipes the metrics directory as it starts
                demo_thread = _start_demo(settings, store_url, stopping, sim_rate, demo_days, demo_builds_per_day)
                stack.callback(demo_thread.join, 20)
        status = web.wait()
        stopping.set()
        # the clean-up below runs to its end: another Ctrl-C does not cut the store's flush short
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        _say("shutting down")
    if status != 0:
        raise SystemExit(status if status > 0 else 1)


def _start_demo(settings: Settings, store_url: str, stop: threading.Event, sim_rate: float, days: int,
                builds_per_day: int) -> threading.Thread:
    """Start the demo data (`_run_demo`) on a thread of `serve`, until `stop` is set."""
    from services.container import build_services

    thread = threading.Thread(target=_run_demo, name="demo", daemon=True,
                              args=(build_services(settings, redis_url=store_url), stop, sim_rate, days, builds_per_day))
    thread.start()
    return thread


def _metrics_dir(port: int) -> str:
    """gunicorn.conf.py's default PROMETHEUS_MULTIPROC_DIR for `port`."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"lulupay-metrics-{os.getuid()}-{port}")


def _web_environment(settings: Settings, store_url: str, access_log: bool | None) -> dict[str, str]:
    """What gunicorn's workers need on top of this environment to build the app `serve` means: its
    address (as settings), the store, what the collector probes, the request log when asked for."""
    env = {"PORT": str(settings.port), "LULUPAY_HOST": settings.host, "LULUPAY_PORT": str(settings.port),
           "LULUPAY_PROBE_URL": settings.probe_target}
    if not settings.store_url:  # the embedded store (REDIS_SENTINELS / REDIS_URL otherwise)
        env["REDIS_URL"] = store_url
    if access_log is not None:
        env["LULUPAY_ACCESS_LOG"] = "true" if access_log else "false"
    return env


def _forward_stop_signals(web, stopping: threading.Event) -> None:
    """From now on SIGINT (Ctrl-C: gunicorn's quick stop) and SIGTERM (graceful) go to gunicorn,
    whose end `serve` waits for before it stops the store; `stopping` is set at once, so the demo
    stops (and saves the builds it has in progress) meanwhile."""
    def forward(received: int, _frame) -> None:
        stopping.set()
        web.send_signal(received)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)


@main.command()
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="serve this process's /metrics on this port (0 = a free port)")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--interval", default=None, type=click.FloatRange(0.5, 300), help="default: LULUPAY_COLLECTOR_INTERVAL_S")
def collector(metrics_port: int | None, metrics_host: str, interval: float | None) -> None:
    """Run the collector as its own process (one leader per deployment: extra ones stand by)."""
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    from services import metrics
    from services.container import build_services

    settings = _settings_or_exit()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_store_url(settings))
        services = build_services(settings, redis_url=url)
        if metrics_port is not None:
            registry = CollectorRegistry()
            registry.register(metrics.ProcessFamilies())
            registry.register(services.snapshot_collector())
            server, _ = start_http_server(metrics_port, addr=metrics_host, registry=registry)
            stack.callback(server.shutdown)
            _say(f"collector metrics on http://{metrics_host}:{server.server_port}/metrics")
        worker = services.collector(interval_s=interval).start()
        stack.callback(worker.stop)
        _say(f"collector {worker.owner} running every {worker.interval_s:g} s; Ctrl-C to stop")
        _wait(stop)


@main.command("publish-alert")
@click.option("--name", required=True, help="alert name, e.g. LowBuildSuccessRate")
@click.option("--severity", type=click.Choice(["info", "warning", "critical"]), default="warning", show_default=True)
@click.option("--state", type=click.Choice(["pending", "firing", "resolved"]), default="firing", show_default=True)
@click.option("--summary", default="", help="one line shown in the toast")
@click.option("--partner", default=None, help="partner id the alert is scoped to (default: all partners)")
def publish_alert(name: str, severity: str, state: str, summary: str, partner: str | None) -> None:
    """Record a hand-made alert state change in the alert history (the `alerts` export) and publish
    it on the live channel, as the alert engine does with its own; every open page shows it as a
    toast."""
    from services.realtime import publish
    from services.vocabulary import is_partner_id
    from services.container import build_services

    if partner is not None and not is_partner_id(partner):
        raise click.BadParameter(f"{partner!r} is not a valid partner id", param_hint="--partner")
    settings = _settings_or_exit()
    with _store_url(settings) as url:
        services = build_services(settings, redis_url=url)
        change = services.alerts.record(rule=name, state=state, severity=severity, partner_id=partner,
                                        summary=summary, source="publish-alert")
        data = {"name": name, "severity": severity, "state": state, "summary": summary}
        if partner:
            data["partner_id"] = partner
        receivers = publish(services.store, "alerts", data)
        click.echo(f"recorded {change['alert_id']} ({state}) in the alert history; published to {receivers} process(es)")


@main.group()
def users() -> None:
    """Manage the users who may sign in (stored in the store, passwords hashed with argon2)."""


def _read_password(prompt: str) -> str:
    """The password from standard input (first line) or, on a terminal, a hidden prompt."""
    if sys.stdin is not None and not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@contextlib.contextmanager
def _user_store():
    from services.auth.users import UserError
    from services.container import build_services

    settings = _settings_or_exit()
    with _store_url(settings) as url:
        try:
            yield build_services(settings, redis_url=url).users
        except UserError as exc:
            raise click.ClickException(str(exc)) from None


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "staff", "partner_manager"]))
@click.option("--partner", "partners", multiple=True, help="a partner id the partner manager sees (repeat)")
def users_add(name: str, role: str, partners: tuple[str, ...]) -> None:
    """Add a user; the password is read from standard input, or prompted on a terminal."""
    password = _read_password("Password")
    with _user_store() as store:
        user = store.add(name, role, partners, password)
        click.echo(f"added {user.name} ({user.role}{': ' + ', '.join(user.partners) if user.partners else ''})")


@users.command("list")
def users_list() -> None:
    """List the users (name, role, partners)."""
    with _user_store() as store:
        for user in store.list():
            click.echo(f"{user.name}\t{user.role}\t{','.join(user.partners) or '-'}")


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove a user and revoke its tokens."""
    with _user_store() as store:
        if not store.remove(name):
            raise click.ClickException(f"no user {name!r}")
        click.echo(f"removed {name}")


@users.command("set-password")
@click.argument("name")
def users_set_password(name: str) -> None:
    """Set a new password (standard input or prompt); the user's sessions end."""
    password = _read_password("New password")
    with _user_store() as store:
        store.set_password(name, password)
        click.echo(f"password of {name} changed; their sessions have ended")


@users.command("token")
@click.argument("name")
def users_token(name: str) -> None:
    """Print a new personal API token for NAME (shown once; only its hash is stored)."""
    with _user_store() as store:
        click.echo(store.new_token(name))


@users.command("revoke-tokens")
@click.argument("name")
def users_revoke_tokens(name: str) -> None:
    """Revoke every personal API token of NAME."""
    with _user_store() as store:
        click.echo(f"revoked {store.revoke_tokens(name)} token(s) of {name}")


def _run_demo(services, stop: threading.Event, sim_rate: float, days: int, builds_per_day: int) -> None:
    """Seed an empty store, then keep the simulator running until `stop`."""
    from services.demo.generator import Simulator
    from services.demo.seeding import save_in_progress, seed_store, store_is_seeded, take_in_progress
    from services.store import StoreUnavailable

    try:
        if not store_is_seeded(services.store):
            from services.collector import sample_system
            from services.demo.host_history import seed_host_history
            try:  # the history ends at the real host's memory and disk levels
                host, _ = sample_system(services.settings.data_dir.resolve(), None)
            except OSError:
                host = None
            if seed_host_history(services.store, days=days, now=services.clock(), host=host):
                _say(f"demo host history: {days} days of synthetic host samples and probes (docs/capacity.md)")
            _say(f"empty store: seeding {days} days of demo history (the pages fill in as it goes)")
            report = seed_store(services.store, services.ingest, days=days, builds_per_day=builds_per_day,
                                stop=stop, progress=_progress_printer(days * builds_per_day * 9))
            _say(f"seed done: {report.accepted:,} events in {report.seconds:.0f} s")
        else:
            _say("store already holds data: no seeding")
        if stop.is_set():
            return
        simulator = Simulator(services.ingest.ingest_batch, rate=sim_rate)
        # the builds the seed (or the last run's simulator) left running finish now or when due
        simulator.schedule(take_in_progress(services.store))
        simulator.start()
        stop.wait()
        simulator.stop()
        save_in_progress(services.store, simulator.pending())
    except StoreUnavailable as exc:
        # Ctrl-C in a terminal reaches the embedded Valkey too, which may stop before this thread.
        log.warning("demo data stopped: store unreachable (%s); an unfinished seed resumes on the next start", exc)
    except Exception:
        log.exception("demo data thread failed")


if __name__ == "__main__":
    sys.exit(main())
