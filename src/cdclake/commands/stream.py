"""``cdclake stream``: run the stream processor (filter / enrich / route) until stopped."""

from __future__ import annotations

import logging
import signal

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@click.option("--instance-id", default=None,
              help="stable id of this process (static group membership, transactional.id); give each "
                   "process its own, and the same one again after a restart")
@click.option("--guarantee", type=click.Choice(["at-least-once", "exactly-once"]), default=None,
              help="override stream.processing_guarantee")
@pass_ctx
def stream(ctx: Context, instance_id: str | None, guarantee: str | None) -> None:
    """Run the stream processor on the cdc.* topics until SIGTERM / Ctrl-C."""
    from cdclake.stream.exceptions import StreamError
    from cdclake.stream.metrics import metrics_dir
    from cdclake.stream.processor import Processor

    pipeline = ctx.pipeline(**{"stream.instance_id": instance_id, "stream.processing_guarantee": guarantee})
    config = pipeline.stream
    if not config.inputs:
        raise StreamError(f"{pipeline.path}: stream.inputs is empty; add an input topic and its steps "
                          "(see docs/stream.md)")
    _log_to_stderr(ctx.debug)
    if not config.enabled:
        ctx.progress("note: stream.enabled is false, so bronze still reads cdc.* rather than this layer's output")
    processor = Processor(config, pipeline.kafka.bootstrap, partitions=pipeline.kafka.partitions,
                          replication_factor=pipeline.kafka.replication_factor,
                          metrics_dir=metrics_dir(pipeline.state_dir))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: processor.stop())
    ctx.progress(f"stream processor {processor.instance} running ({config.processing_guarantee}); "
                 "SIGTERM or Ctrl-C stops it after a final commit")
    processor.run()
    ctx.emit(processor.snapshot(), lambda s: f"stopped; dead letters: {s['dead_letters']}")


def _log_to_stderr(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("cdclake.kafka").setLevel(logging.WARNING)
