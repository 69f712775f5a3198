"""Writes the shipped workflows (workflows/*.json, UI format) from the node definitions.

    python tests/workflow_tools/build_workflows.py        # needs a ComfyUI checkout (COMFYUI_PATH or ~/ComfyUI)

The graphs are defined here once; the browser test then loads every file in the real frontend, and its
thumbnail run saves what the frontend shows.
"""
from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "host"))
sys.path.insert(0, str(ROOT / "tests" / "workflow_tools"))

from ui_graph import UIGraph  # noqa: E402

WAN_FILES = {
    "unet": ("wan2.1_t2v_1.3B_fp16.safetensors", "diffusion_models",
             "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/"
             "wan2.1_t2v_1.3B_fp16.safetensors?download=true"),
    "clip": ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders",
             "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/"
             "umt5_xxl_fp8_e4m3fn_scaled.safetensors?download=true"),
    "vae": ("wan_2.1_vae.safetensors", "vae",
            "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/"
            "wan_2.1_vae.safetensors?download=true"),
}
NEGATIVE = ("static, blurry, low quality, worst quality, jpeg artifacts, deformed, extra fingers, watermark, "
            "subtitles, still picture, messy background")
GREEN = ("#232", "#353")
RED = ("#322", "#533")
FADE_COLOR = ("#2a3b4f", "#3a5270")


def _models(key):
    name, directory, url = WAN_FILES[key]
    return {"models": [{"name": name, "url": url, "directory": directory}]}


def _load_wan(g: UIGraph, x=0, y=40):
    unet = g.add("UNETLoader", (x, y), (360, 82), widgets={"unet_name": WAN_FILES["unet"][0]},
                 properties=_models("unet"))
    clip = g.add("CLIPLoader", (x, y + 130), (360, 106), widgets={"clip_name": WAN_FILES["clip"][0], "type": "wan"},
                 properties=_models("clip"))
    vae = g.add("VAELoader", (x, y + 280), (360, 58), widgets={"vae_name": WAN_FILES["vae"][0]},
                properties=_models("vae"))
    shift = g.add("ModelSamplingSD3", (x, y + 380), (360, 58), widgets={"shift": 8.0})
    g.link(unet, "MODEL", shift, "model")
    g.group("1. Models (Wan 2.1 T2V 1.3B)", (x - 10, y - 80, 380, 530))
    return shift, clip, vae


def _decode_and_save(g: UIGraph, latent, vae, pos, save_pos, prefix):
    """VAEDecode -> CreateVideo (16 fps, Wan's rate) -> SaveVideo."""
    decode = g.add("VAEDecode", pos, (210, 46))
    g.link(latent[0], latent[1], decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    video = g.add("CreateVideo", (pos[0], pos[1] + 80), (270, 78), widgets={"fps": 16.0})
    g.link(decode, "IMAGE", video, "images")
    save = g.add("SaveVideo", save_pos, (480, 460), widgets={"filename_prefix": prefix})
    g.link(video, "VIDEO", save, "video")


FREEINIT_NOTE = """## FreeInit with Wan 2.1 (text to video)

**FreeInit** samples the video several times. Between passes the result is re-noised with the first pass's
noise, its **spatio-temporal low frequencies** are kept (3-D low-pass), and the high frequencies are drawn
fresh. The video's layout and motion settle pass by pass, which improves temporal consistency.

* **FreeInit** node: `passes` = 3 (two re-initialisations; time x3). `renoise_sigma` 0 = automatic: for this
  flow-matching model it is 0.936, the level with the same signal-to-noise ratio as the paper's t=999.
  `coarse_to_fine` runs fewer steps in early passes (faster, sometimes worse).
* **3D Gaussian LPF**: what survives between passes. d_s = d_t = 0.25 is the paper's default; the node draws
  its response. Higher cut-offs keep more of the previous pass (less variety, more stability).
* Works with any sampler node: the FreeInit node patches the MODEL, the stock **KSampler** runs the passes and
  its progress bar counts all of them.

Models: put `wan2.1_t2v_1.3B_fp16.safetensors` in `models/diffusion_models`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`
in `models/text_encoders`, `wan_2.1_vae.safetensors` in `models/vae`. 33 frames at 832x480 needs about 8 GB of VRAM.
"""

FADE_NOTE = """## FADE: edit a video with Wan 2.1

1. **Load** your clip (LoadVideo): at least 33 frames. It is cut to 33 frames (Wan needs 4n+1) and resized to
   832x480, then VAE-encoded.
2. **DDIM Invert** runs the model backwards along the same schedule the edit uses (empty prompt, cfg 1) and
   records the whole trajectory. `refine` 2 makes the inversion nearly exact (one extra model call per step each).
3. **Sketch-Block Spectrum Guide**: for the first 60% of the steps, the low-frequency spectrum of the first 4
   blocks' attention features is pulled toward the source trajectory: layout and motion stay, the **target
   prompt** changes the content. The **source prompt** describes the original clip.
   * strength 1 (unit normalisation) is a good start; raise it if the layout drifts, lower it if the edit is too weak.
   * The LPF here is the official box (keeps 2/3 of the spatial spectrum), spectrum 2d, as in the official code.
4. **Modulated DDIM Sampler** applies the guide in SamplerCustomAdvanced. Use the same SIGMAS for inversion and
   sampling and connect the **noise** output of DDIM Invert.

Optional: connect a MASK (white = edit region) to the sampler for local blending of the background.
"""


def freeinit_workflow(node_classes) -> dict:
    g = UIGraph(node_classes)
    model, clip, vae = _load_wan(g)
    lpf = g.add("FADE_GaussianLPF3D", (420, 40), (380, 330), color=FADE_COLOR,
                widgets={"filter_type": "gaussian", "spatial_cutoff": 0.25, "temporal_cutoff": 0.25})
    freeinit = g.add("FADE_FreeInit", (420, 410), (380, 150), color=FADE_COLOR,
                     widgets={"passes": 3, "renoise_sigma": 0.0, "coarse_to_fine": False})
    g.link(model, "MODEL", freeinit, "model")
    g.link(lpf, "filter", freeinit, "filter")
    response = g.add("PreviewImage", (420, 600), (380, 200), title="Filter response")
    g.link(lpf, "response", response, "images")
    g.group("2. FreeInit", (410, -40, 400, 860))

    positive = g.add("CLIPTextEncode", (840, 40), (420, 160), title="Prompt", color=GREEN,
                     widgets={"text": "a red fox trotting through fresh snow in a pine forest, morning light, "
                                      "tracking shot"})
    negative = g.add("CLIPTextEncode", (840, 240), (420, 130), title="Negative prompt", color=RED,
                     widgets={"text": NEGATIVE})
    g.link(clip, "CLIP", positive, "clip")
    g.link(clip, "CLIP", negative, "clip")
    latent = g.add("EmptyHunyuanLatentVideo", (840, 410), (420, 130),
                   widgets={"width": 832, "height": 480, "length": 33, "batch_size": 1})
    g.group("3. Prompt and size", (830, -40, 440, 600))

    sampler = g.add("KSampler", (1300, 40), (330, 262),
                    widgets={"seed": 20240711, "seed:control": "fixed", "steps": 30, "cfg": 6.0,
                             "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0})
    g.link(freeinit, "MODEL", sampler, "model")
    g.link(positive, "CONDITIONING", sampler, "positive")
    g.link(negative, "CONDITIONING", sampler, "negative")
    g.link(latent, "LATENT", sampler, "latent_image")
    _decode_and_save(g, (sampler, "LATENT"), vae, (1300, 340), (1660, 40), "video/FreeInit")
    g.add("MarkdownNote", (0, 600), (400, 520), title="About this workflow", widgets={"text": FREEINIT_NOTE})
    return g.to_json()


def fade_workflow(node_classes) -> dict:
    g = UIGraph(node_classes)
    model, clip, vae = _load_wan(g)

    load = g.add("LoadVideo", (420, 40), (340, 330), widgets={"file": "fade_source.mp4"})
    parts = g.add("GetVideoComponents", (420, 410), (250, 70))
    g.link(load, "VIDEO", parts, "video")
    frames = g.add("ImageFromBatch", (420, 520), (270, 82), title="First 33 frames (4n+1)",
                   widgets={"batch_index": 0, "length": 33})
    g.link(parts, "images", frames, "image")
    resize = g.add("ImageScale", (420, 640), (300, 130), title="Resize to 832x480",
                   widgets={"upscale_method": "lanczos", "width": 832, "height": 480, "crop": "center"})
    g.link(frames, "IMAGE", resize, "image")
    encode = g.add("VAEEncode", (420, 810), (210, 46))
    g.link(resize, "IMAGE", encode, "pixels")
    g.link(vae, "VAE", encode, "vae")
    g.group("2. Source video", (410, -40, 360, 920))

    empty = g.add("CLIPTextEncode", (800, 40), (400, 100), title="Inversion prompt (empty)", widgets={"text": ""})
    source = g.add("CLIPTextEncode", (800, 180), (400, 130), title="Source prompt (describes the clip)",
                   color=GREEN, widgets={"text": "a man riding a bicycle along a city street"})
    target = g.add("CLIPTextEncode", (800, 350), (400, 130), title="Target prompt (the edit)", color=GREEN,
                   widgets={"text": "a knight in shining armour riding a bicycle along a city street"})
    negative = g.add("CLIPTextEncode", (800, 520), (400, 130), title="Negative prompt", color=RED,
                     widgets={"text": NEGATIVE})
    for node in (empty, source, target, negative):
        g.link(clip, "CLIP", node, "clip")
    g.group("3. Prompts", (790, -40, 420, 710))

    sigmas = g.add("BasicScheduler", (1240, 40), (320, 106),
                   widgets={"scheduler": "simple", "steps": 30, "denoise": 1.0})
    g.link(model, "MODEL", sigmas, "model")
    invert = g.add("FADE_DDIMInvert", (1240, 190), (320, 170), color=FADE_COLOR, widgets={"cfg": 1.0, "refine": 2})
    g.link(model, "MODEL", invert, "model")
    g.link(empty, "CONDITIONING", invert, "conditioning")
    g.link(encode, "LATENT", invert, "latent")
    g.link(sigmas, "SIGMAS", invert, "sigmas")
    lpf = g.add("FADE_GaussianLPF3D", (1240, 400), (320, 330), color=FADE_COLOR,
                title="3D Gaussian LPF (official FADE box)",
                widgets={"filter_type": "box", "spatial_cutoff": 0.67, "temporal_cutoff": 1.0})
    guide = g.add("FADE_SketchSpectrumGuide", (1600, 40), (340, 330), color=FADE_COLOR,
                  widgets={"sketch_blocks": 4, "strength": 1.0, "guided_fraction": 0.6, "feature": "attention",
                           "spectrum": "2d", "normalisation": "unit", "ratio_min": 0.33, "ratio_max": 3.0,
                           "memory": "fast"})
    g.link(model, "MODEL", guide, "model")
    g.link(invert, "trajectory", guide, "trajectory")
    g.link(source, "CONDITIONING", guide, "source_conditioning")
    g.link(lpf, "filter", guide, "filter")
    g.group("4. FADE", (1230, -40, 720, 790))

    sampler = g.add("FADE_ModulatedDDIMSampler", (1980, 40), (320, 80), color=FADE_COLOR,
                    widgets={"blend_fraction": 0.7})
    guider = g.add("CFGGuider", (1980, 160), (320, 100), widgets={"cfg": 5.0})
    g.link(guide, "MODEL", guider, "model")
    g.link(target, "CONDITIONING", guider, "positive")
    g.link(negative, "CONDITIONING", guider, "negative")
    run = g.add("SamplerCustomAdvanced", (1980, 300), (320, 110))
    g.link(invert, "noise", run, "noise")
    g.link(guider, "GUIDER", run, "guider")
    g.link(sampler, "SAMPLER", run, "sampler")
    g.link(sigmas, "SIGMAS", run, "sigmas")
    g.link(encode, "LATENT", run, "latent_image")
    _decode_and_save(g, (run, "output"), vae, (1980, 450), (2340, 40), "video/FADE_edit")
    g.group("5. Edit and save", (1970, -40, 860, 680))
    g.add("MarkdownNote", (0, 600), (400, 600), title="About this workflow", widgets={"text": FADE_NOTE})
    return g.to_json()


WORKFLOWS = {"freeinit_wan21_t2v": freeinit_workflow, "fade_video_edit_wan21": fade_workflow}


def main():
    import harness
    harness.bootstrap()
    import nodes
    out_dir = ROOT / "workflows"
    out_dir.mkdir(exist_ok=True)
    for name, build in WORKFLOWS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(build(nodes.NODE_CLASS_MAPPINGS), indent=2) + "\n")
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
