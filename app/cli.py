"""Command line: `lulupay-analytics serve | seed | simulate | collector | publish-alert | users` (also `python -m app`)."""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time

import click

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
        click.echo(f"using the embedded Valkey another process runs on {url} (data in {settings.data_dir.resolve()})")
        yield url
        return
    try:
        embedded = EmbeddedValkey(settings.data_dir).start()
    except StoreDirInUse as exc:  # another process is starting it right now
        raise click.ClickException(f"{exc}; try again in a moment, or set REDIS_URL") from None
    click.echo(f"embedded Valkey on {embedded.url}, data in {settings.data_dir.resolve()}")
    try:
        yield embedded.url
    finally:
        embedded.stop()
        click.echo("embedded Valkey stopped")


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
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """LuluPay Analytics: dashboards, ingest API and metrics for the white-label build service."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _progress_printer(total_hint: int):
    last = [0.0]

    def progress(accepted: int, duplicates: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            click.echo(f"  seeding: {accepted:,} events written ({duplicates:,} already there) of about {total_hint:,}")
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
        click.echo(f"simulating {rate} builds/s; Ctrl-C to stop")
        _wait(stop)


@main.command()
@click.option("--host", default=None, help="default: LULUPAY_HOST or 127.0.0.1")
@click.option("--port", default=None, type=int, help="default: LULUPAY_PORT or 8050")
@click.option("--demo/--no-demo", default=False, show_default=True,
              help="seed an empty store with 90 days of history and run the live simulator")
@click.option("--demo-days", default=90, show_default=True, type=click.IntRange(1, 730), help="days of demo history")
@click.option("--demo-builds-per-day", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--sim-rate", default=0.1, show_default=True, type=float, help="builds/s of the demo simulator (0.1 ≈ the history's daily volume)")
@click.option("--access-log/--no-access-log", default=None,
              help="one line per request on the terminal (default: LULUPAY_ACCESS_LOG, off)")
def serve(host: str | None, port: int | None, demo: bool, demo_days: int, demo_builds_per_day: int,
          sim_rate: float, access_log: bool | None) -> None:
    """Serve the web app (pages, API, metrics) on one process."""
    from werkzeug.serving import make_server

    from app.factory import background, create_app, freeze_startup_objects
    from services.container import build_services

    settings = _settings_or_exit()
    host = host or settings.host
    port = port or settings.port
    # where this process serves: the collector's availability probe defaults to its /readyz
    settings = settings.model_copy(update={"host": host, "port": port})
    # werkzeug logs every request at INFO: a page load is dozens of lines, a refreshing page a
    # stream of them. Off unless asked for (warnings and errors still show).
    if not (settings.access_log if access_log is None else access_log):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop the server — also when it was started from a shell's background job,
    # which leaves SIGINT ignored (Python then installs no handler of its own).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_store_url(settings))
        services = build_services(settings, redis_url=url)
        app = create_app(settings, services)
        freeze_startup_objects()
        # listening before the background starts: the collector's first probe finds the server up
        server = make_server(host, port, app.server, threaded=True)
        stack.callback(server.server_close)
        stack.callback(background(app).start().stop)
        if demo:
            demo_thread = threading.Thread(target=_run_demo, name="demo", daemon=True,
                                           args=(services, stop, sim_rate, demo_days, demo_builds_per_day))
            demo_thread.start()
            stack.callback(demo_thread.join, 10)
            stack.callback(stop.set)
        click.echo(f"serving on http://{host}:{port}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        click.echo("shutting down")


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
            click.echo(f"collector metrics on http://{metrics_host}:{server.server_port}/metrics")
        worker = services.collector(interval_s=interval).start()
        stack.callback(worker.stop)
        click.echo(f"collector {worker.owner} running every {worker.interval_s:g} s; Ctrl-C to stop")
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
                click.echo(f"demo host history: {days} days of synthetic host samples and probes (docs/capacity.md)")
            click.echo(f"empty store: seeding {days} days of demo history (the pages fill in as it goes)")
            report = seed_store(services.store, services.ingest, days=days, builds_per_day=builds_per_day,
                                stop=stop, progress=_progress_printer(days * builds_per_day * 9))
            click.echo(f"seed done: {report.accepted:,} events in {report.seconds:.0f} s")
        else:
            click.echo("store already holds data: no seeding")
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
