"""What the user sees while the pack samples: status text on the node and one progress bar over several
sampling calls."""
from __future__ import annotations

import logging

log = logging.getLogger("FADE")


def send_node_text(text: str):
    """Status text on the node being executed (the sampler node), when running under the ComfyUI server."""
    try:
        from comfy_execution.utils import get_executing_context
        import server
        context = get_executing_context()
        instance = getattr(server.PromptServer, "instance", None)
        if context is not None and instance is not None and hasattr(instance, "send_progress_text"):
            instance.send_progress_text(text, context.node_id)
    except Exception as error:   # a status line must never break sampling
        log.debug("could not send node text: %s", error)


def offset_callback(callback, offset: int, total: int):
    """One progress bar over several sampling calls: forward each step as step `offset + i` of `total`."""
    if callback is None:
        return None

    def forward(step, x0, x, total_steps, *args, **kwargs):
        return callback(offset + step, x0, x, total, *args, **kwargs)
    return forward
