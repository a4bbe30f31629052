"""CLI verbs for running searches on a Ray cluster: ``submit``, ``logs``, ``cancel``.

``mixopt status --address URL JOB`` (the cluster form of ``status``) calls
:func:`mixopt.service.print_cluster_status`; the verb itself lives with the search commands.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_address_argument", "register"]


def add_address_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--address URL``: the Ray Jobs API (dashboard) URL; default ``$RAY_API_SERVER_ADDRESS``."""
    parser.add_argument(
        "--address",
        required=required,
        default=None,
        metavar="URL",
        help="Ray Jobs API (dashboard) URL, e.g. http://127.0.0.1:8265 "
        "(default: $RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265). "
        "The token comes from $RAY_AUTH_TOKEN or $RAY_AUTH_TOKEN_PATH.",
    )


def _submit(args: argparse.Namespace) -> int:
    from mixopt import service

    job_id = service.submit_search(
        args.config, address=args.address, tracking_uri=args.tracking_uri, cluster_root=args.cluster_root
    )
    print(job_id)
    if not args.follow:
        print(f"follow it with: mixopt logs --follow {job_id}", file=sys.stderr)
        return 0
    state = service.stream_logs(args.address, job_id, follow=True)
    print(f"{job_id}: {state.status}", file=sys.stderr)
    return 0 if state.status == "SUCCEEDED" else 1


def _logs(args: argparse.Namespace) -> int:
    from mixopt import service

    state = service.stream_logs(args.address, args.job_id, follow=args.follow)
    if args.follow:
        print(f"{args.job_id}: {state.status}", file=sys.stderr)
        return 0 if state.status == "SUCCEEDED" else 1
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from mixopt import service

    stopped = service.stop_job(args.address, args.job_id)
    print(f"{args.job_id}: {'stop requested' if stopped else 'not running'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``logs`` and ``cancel`` to the ``mixopt`` parser."""
    p = sub.add_parser(
        "submit",
        help="run a search on a Ray cluster (Ray Jobs API)",
        description="Send `mixopt search JOB.yaml` to a Ray cluster through the Ray Jobs API and print the job "
        "id. Only the job file is uploaded; the cluster must have mixopt installed and see the data paths.",
    )
    p.add_argument("config", metavar="JOB.yaml", help="job configuration file")
    add_address_argument(p)
    p.add_argument(
        "--tracking-uri", default=None, metavar="URI",
        help="MLflow server the job logs to, as seen from the cluster (e.g. http://mlflow:5000 in compose)",
    )  # fmt: skip
    p.add_argument(
        "--cluster-root", default=None, metavar="DIR",
        help="resolve relative paths of the job file under this absolute directory on the cluster "
        "(e.g. /data/demo); default: next to the local job file (shared filesystem)",
    )  # fmt: skip
    p.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    p.set_defaults(handler=_submit)

    p = sub.add_parser("logs", help="print (or --follow) a cluster job's log")
    p.add_argument("job_id", metavar="JOB_ID", help="submission id printed by `mixopt submit`")
    add_address_argument(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep streaming until the job ends")
    p.set_defaults(handler=_logs)

    p = sub.add_parser("cancel", help="stop a running cluster job")
    p.add_argument("job_id", metavar="JOB_ID")
    add_address_argument(p)
    p.set_defaults(handler=_cancel)
