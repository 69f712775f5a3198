"""Turn the API prompt of a shipped workflow into one that runs in seconds on CPU with tiny synthetic weights."""
import harness

# Literal inputs capped wherever they appear: sizes to a 64x64, 5-frame clip (a 2 x 8 x 8 Wan latent), and the
# loop counts to the fewest that still exercise every code path.
CAPS = {"width": 64, "height": 64, "length": 5, "batch_size": 1, "steps": 3, "passes": 2, "refine": 1}
UNET_LOADERS = ("UNETLoader",)


def tiny_prompt(prompt, unet_name, family="wan21"):
    """Stand-ins for the text encoder and VAE, the tiny diffusion model, and capped sizes. Returns a new dict."""
    out = harness.swap_standins(prompt, family=family, vae=True)
    for node in out.values():
        inputs = node.get("inputs", {})
        if node.get("class_type") in UNET_LOADERS:
            inputs["unet_name"] = unet_name
            inputs["weight_dtype"] = "default"
        for name, cap in CAPS.items():
            value = inputs.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                inputs[name] = cap
    return out
