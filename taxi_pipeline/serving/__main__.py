"""Local model server with tensorflow_model_server's flags and APIs.

    python -m taxi_pipeline.serving --model_name chicago_taxi \\
        --model_base_path outputs/serving_model/chicago_taxi
    python -m taxi_pipeline.serving --model_config_file outputs/serving_model/models.config

The terminal shows the server's own lines (each model version loaded, config
changes, the ports); the full logs, TensorFlow's included, go to
<log_dir>/serving-<start time>.log (to the terminal too with --verbose).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Optional, Sequence

import taxi_pipeline  # noqa: F401  (Keras 2 before TensorFlow loads)
from taxi_pipeline import settings
from taxi_pipeline.runs.layout import new_run_id
from taxi_pipeline.runs.run_log import RunLog
from taxi_pipeline.serving import config

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _flag_bool(text: str) -> bool:
    """A boolean flag's value as tensorflow_model_server takes it (--flag=true|false)."""
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default: %(default)s)")
    p.add_argument("--rest_api_port", type=int, default=8501, help="REST port, 0 for none (default: %(default)s)")
    p.add_argument("--model_name", help="name of the one model served (with --model_base_path)")
    p.add_argument("--model_base_path", help="folder holding the model's numeric version folders")
    p.add_argument("--model_config_file",
                   help="text-format ModelServerConfig: models, version policies and labels")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="how often to re-read --model_config_file and apply changes; 0 for never "
                        "(default: %(default)s)")
    p.add_argument("--allow_version_labels_for_unavailable_models", action="store_true",
                   help="accept labels pointing at versions not yet available, as TF Serving's flag")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                   help="how often to look for new versions; 0 for never (default: %(default)s)")
    p.add_argument("--enable_batching", type=_flag_bool, nargs="?", const=True, default=False,
                   help="merge concurrent requests to a signature into one call (also --enable_batching=true)")
    p.add_argument("--max_batch_size", type=int, default=32, help="with --enable_batching (default: %(default)s)")
    p.add_argument("--batch_timeout_micros", type=int, default=2000,
                   help="with --enable_batching: longest wait for a batch to fill (default: %(default)s)")
    p.add_argument("--native_front", choices=("auto", "on", "off"), default="auto",
                   help="answer gRPC in the C++ front built by `make native`, which runs the models "
                        "itself; auto uses it when built (default: %(default)s)")
    p.add_argument("--monitoring_config_file",
                   help="TF Serving's MonitoringConfig text proto; with prometheus_config { enable: true } "
                        "the REST port serves Prometheus metrics at its path")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--grpc_workers", type=int, default=16, help="threads answering gRPC calls")
    p.add_argument("--grpc_max_threads", type=_positive, default=256,
                   help="gRPC calls in progress at once; beyond, RESOURCE_EXHAUSTED (default: %(default)s)")
    p.add_argument("--rest_api_num_threads", type=_positive, default=64,
                   help="REST connections open at once; beyond, HTTP 503 (default: %(default)s)")
    p.add_argument("--rest_api_timeout_in_ms", type=_positive, default=30000,
                   help="a REST connection silent this long is closed (default: %(default)s)")
    p.add_argument("--shutdown_grace_seconds", type=float, default=10.0,
                   help="on SIGTERM, how long requests in progress may finish before the server exits "
                        "(default: %(default)s)")
    p.add_argument("--log_dir", default=os.path.join(settings.DEFAULT_OUTPUT_DIR, "logs"),
                   help="where the full log of each start goes (default: %(default)s)")
    p.add_argument("--verbose", action="store_true", help="also show the full logs on the terminal")
    return p


def models_from_flags(args: argparse.Namespace, p: argparse.ArgumentParser) -> config.ModelServerConfig:
    if args.model_config_file:
        if args.model_base_path:
            p.error("give --model_config_file or --model_base_path, not both")
        try:
            return config.read(args.model_config_file)
        except config.ConfigError as e:
            p.error(str(e))
    if not args.model_base_path:
        p.error("--model_base_path (with --model_name) or --model_config_file is required")
    return config.build({args.model_name or "default": os.path.abspath(args.model_base_path)})


def _show_own_lines(log: RunLog) -> None:
    """Logs go to the log file; the server's own lines (this package's INFO
    and above) also to the terminal's standard error, as before."""
    # force: TensorFlow's absl logging may already have put a handler on the root logger.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    if log.verbose:
        return  # everything reaches the terminal already
    echo = logging.StreamHandler(log.terminal_err)
    echo.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    echo.addFilter(lambda record: record.pathname.startswith(_PACKAGE_DIR))
    logging.getLogger().addHandler(echo)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    models = models_from_flags(args, p)
    metrics_path = None
    if args.monitoring_config_file:
        from taxi_pipeline.serving.monitoring import MonitoringConfigError, read_config

        try:
            metrics_path = read_config(args.monitoring_config_file)
        except MonitoringConfigError as e:
            p.error(str(e))
        if metrics_path and not args.rest_api_port:
            p.error("--monitoring_config_file: Prometheus metrics are served on the REST port; give --rest_api_port")
    with RunLog(verbose=args.verbose, quiet_exit=True) as log:
        log.write_to(os.path.join(args.log_dir, f"serving-{new_run_id()}.log"))
        _show_own_lines(log)
        logging.info("full log: %s", log.path)
        _serve(args, models, metrics_path)


def _serve(args: argparse.Namespace, models: config.ModelServerConfig, metrics_path: Optional[str]) -> None:
    # TensorFlow loads only now, its start-up noise going to the log.
    from taxi_pipeline.serving.batching import Batcher
    from taxi_pipeline.serving.server import ConfigWatcher, Limits, Server, native_front

    batcher = Batcher(args.max_batch_size, args.batch_timeout_micros) if args.enable_batching else None
    front = native_front(args.native_front)
    server = Server(models, args.host, args.port, args.rest_api_port if args.rest_api_port else -1,
                    args.file_system_poll_wait_seconds, args.grpc_workers, batcher, front,
                    allow_labels_for_unavailable=args.allow_version_labels_for_unavailable_models,
                    limits=Limits(args.grpc_max_threads, args.rest_api_num_threads, args.rest_api_timeout_in_ms,
                                  args.shutdown_grace_seconds), metrics_path=metrics_path)
    try:
        server.start()
    except config.ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    watcher = None
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        watcher = ConfigWatcher(args.model_config_file, args.model_config_file_poll_wait_seconds,
                                server.manager, models)
        watcher.start()
    if metrics_path:
        logging.info("Prometheus metrics at http://%s:%d%s", args.host, server.rest_api_port, metrics_path)
    logging.info("serving %s: gRPC on %s:%d%s, REST on %s",
                 ", ".join(m.name for m in models.model_config_list.config), args.host, server.port,
                 " (native front)" if front else "",
                 f"{args.host}:{server.rest_api_port}" if server.rest else "(off)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    logging.info("stopping: no new requests; those in progress have %.0f s to finish", args.shutdown_grace_seconds)
    if watcher:
        watcher.stop()
    server.stop()
    logging.info("stopped")


if __name__ == "__main__":
    main()
