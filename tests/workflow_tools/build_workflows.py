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
A14B_REPO = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/"
A14B_FILES = {
    "high": ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "diffusion_models",
             A14B_REPO + "diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors?download=true"),
    "low": ("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "diffusion_models",
            A14B_REPO + "diffusion_models/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors?download=true"),
    "clip": WAN_FILES["clip"],
    "vae": ("wan_2.1_vae.safetensors", "vae", A14B_REPO + "vae/wan_2.1_vae.safetensors?download=true"),
}
NEGATIVE = ("static, blurry, low quality, worst quality, jpeg artifacts, deformed, extra fingers, watermark, "
            "subtitles, still picture, messy background")
GREEN = ("#232", "#353")
RED = ("#322", "#533")
FADE_COLOR = ("#2a3b4f", "#3a5270")


# The FADE graph is laid out in two rows of columns (COL apart) so that it reads at fit-to-screen; the Note runs down
# the right-hand side. In Vue-nodes mode a node is at least as tall as its widgets need (often more than the classic
# canvas draws), so nodes are stacked by the larger of the two: VUE_HEIGHT holds what frontend 1.49 renders.
COL = 340
ROW2 = 840
TITLE_AND_GAP = 56
CHECK_COLOR = ("#3a3a2a", "#55553a")
VUE_HEIGHT = {"UNETLoader": 86, "CLIPLoader": 114, "VAELoader": 62, "ModelSamplingSD3": 62, "GetVideoComponents": 114,
              "ImageFromBatch": 90, "ImageScale": 146, "VAEEncode": 54, "CLIPTextEncode": 102, "BasicScheduler": 118,
              "FADE_DDIMInvert": 194, "KSamplerSelect": 62, "BasicGuider": 54, "SamplerCustomAdvanced": 114,
              "VAEDecode": 54, "ImageStitch": 150, "CreateVideo": 110, "SaveVideo": 126, "CFGGuider": 102,
              "FADE_ModulatedDDIMSampler": 80, "FADE_ExpertPairGuider": 214, "RandomNoise": 86}


class Column:
    """Adds nodes top to bottom at one x, each below the previous one's tallest rendering."""

    def __init__(self, g: UIGraph, x, y, width=310):
        self.g, self.x, self.y, self.width = g, x, y, width

    def add(self, type_name, height, **kwargs):
        height = max(height, VUE_HEIGHT.get(type_name, 0))
        node = self.g.add(type_name, (self.x, self.y), (kwargs.pop("width", self.width), height), **kwargs)
        self.y += height + TITLE_AND_GAP
        return node


def _models(key):
    name, directory, url = WAN_FILES[key]
    return {"models": [{"name": name, "url": url, "directory": directory}]}


def _load_wan(g: UIGraph, x=0, y=40, width=360):
    col = Column(g, x, y, width)
    unet = col.add("UNETLoader", 82, widgets={"unet_name": WAN_FILES["unet"][0]}, properties=_models("unet"))
    clip = col.add("CLIPLoader", 106, widgets={"clip_name": WAN_FILES["clip"][0], "type": "wan"},
                   properties=_models("clip"))
    vae = col.add("VAELoader", 58, widgets={"vae_name": WAN_FILES["vae"][0]}, properties=_models("vae"))
    shift = col.add("ModelSamplingSD3", 58, widgets={"shift": 8.0})
    g.link(unet, "MODEL", shift, "model")
    title = "1. Models" if width < 360 else "1. Models (Wan 2.1 T2V 1.3B)"     # a narrow group fits the short one
    g.group(title, (x - 10, y - 80, width + 20, col.y - y + 40))
    return shift, clip, vae


def _load_wan22_a14b(g: UIGraph, x=0, y=40, width=360):
    """Both A14B experts (each through ModelSamplingSD3, shift 8 as ComfyUI's Wan 2.2 templates), one text encoder
    and the Wan 2.1 VAE (A14B uses it)."""
    def models(key):
        name, directory, url = A14B_FILES[key]
        return {"models": [{"name": name, "url": url, "directory": directory}]}
    col = Column(g, x, y, width)
    high = col.add("UNETLoader", 82, title="High-noise expert", widgets={"unet_name": A14B_FILES["high"][0]},
                   properties=models("high"))
    low = col.add("UNETLoader", 82, title="Low-noise expert", widgets={"unet_name": A14B_FILES["low"][0]},
                  properties=models("low"))
    clip = col.add("CLIPLoader", 106, widgets={"clip_name": A14B_FILES["clip"][0], "type": "wan"},
                   properties=models("clip"))
    vae = col.add("VAELoader", 58, widgets={"vae_name": A14B_FILES["vae"][0]}, properties=models("vae"))
    shift_high = col.add("ModelSamplingSD3", 58, title="Shift (high)", widgets={"shift": 8.0})
    shift_low = col.add("ModelSamplingSD3", 58, title="Shift (low)", widgets={"shift": 8.0})
    g.link(high, "MODEL", shift_high, "model")
    g.link(low, "MODEL", shift_low, "model")
    title = "1. Models" if width < 360 else "1. Models (Wan 2.2 T2V A14B)"
    g.group(title, (x - 10, y - 80, width + 20, col.y - y + 40))
    return shift_high, shift_low, clip, vae


def _decode_and_save(g: UIGraph, latent, vae, pos, save_pos, prefix):
    """VAEDecode -> CreateVideo (16 fps, Wan's rate) -> SaveVideo."""
    col = Column(g, pos[0], pos[1], 270)
    decode = col.add("VAEDecode", 46)
    g.link(latent[0], latent[1], decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    video = col.add("CreateVideo", 78, widgets={"fps": 16.0})
    g.link(decode, "IMAGE", video, "images")
    save = g.add("SaveVideo", save_pos, (480, 460), widgets={"filename_prefix": prefix})
    g.link(video, "VIDEO", save, "video")


# Notes: one line per paragraph or bullet. The frontend's Markdown renderer lost a space at a hard line break next to
# a code span, so nothing is wrapped inside a paragraph.
MODELS_LINE = ("**Models** (Comfy-Org repackaged; ComfyUI offers to download them): "
               "`wan2.1_t2v_1.3B_fp16.safetensors` in `models/diffusion_models`, "
               "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` in `models/text_encoders`, `wan_2.1_vae.safetensors` in "
               "`models/vae`.")

FREEINIT_NOTE = "\n".join([
    "## FreeInit with Wan 2.1 (text to video)",
    "",
    "**FreeInit** samples the video several times. Between passes the result is re-noised with the first pass's "
    "noise, its **spatio-temporal low frequencies** are kept (3-D low-pass), and the high frequencies are drawn "
    "fresh. The video's layout and motion settle pass by pass, which improves temporal consistency.",
    "",
    "* **FreeInit** node: `passes` = 3 (two re-initialisations; time x3). `renoise_sigma` shows *auto* at 0: for "
    "this flow-matching model that is 0.936, the level with the same signal-to-noise ratio as the paper's t=999. "
    "`coarse_to_fine` runs fewer steps in early passes (faster, sometimes worse).",
    "* **3D Low-Pass Filter**: what survives between passes. d_s = d_t = 0.25 is the paper's default; the node "
    "draws its response on this graph's latent. Higher cut-offs keep more of the previous pass (less variety, "
    "more stability).",
    "* Works with any sampler node: the FreeInit node patches the MODEL, the stock **KSampler** runs the passes and "
    "its progress bar counts all of them.",
    "",
    MODELS_LINE + " 33 frames at 832x480: about 6 GB of VRAM (estimate; README, VRAM table).",
])

FADE_NOTE = "\n".join([
    "## FADE: edit a video with Wan 2.1 T2V 1.3B",
    "",
    "**Before the first run: pick your clip.** In **Load Video**, click *choose video to upload* (or copy the file "
    "into `ComfyUI/input/` and pick it). Any .mp4, .webm or .mov with **at least 33 frames**; it is cut to its first "
    "33 frames and resized to 832x480 (centre crop). Then describe the clip in **Source prompt** and the edit in "
    "**Target prompt** (the same sentence with the change is best).",
    "",
    "**Frame counts.** Wan needs 4n+1 frames: 33 (default), 49, 65 or 81. For a longer edit set `length` in "
    "*First frames (4n+1)* to one of these; the clip must have at least that many frames. More frames need more "
    "VRAM (README, VRAM table).",
    "",
    "**Check the inversion first (optional, recommended).** The *Inversion check* group is bypassed. Right-click its "
    "title and choose **Set Group Nodes to Always**, then run: it rebuilds the source from DDIM Invert's noise with "
    "the plain `ddim` sampler and saves *source | reconstruction* side by side. They should match (closer with "
    "higher `refine`). Bypass it again (right-click, **Bypass Group Nodes**) to save the time.",
    "",
    "**What runs**",
    "",
    "1. **DDIM Invert** walks the model backwards along the edit's own schedule (empty prompt, cfg 1). `refine` 6 "
    "(the node's default) makes it nearly exact, each refinement one extra model call per step; 0 is plain DDIM "
    "inversion, fastest and least exact. Above 0 the node checks its result by one round trip and keeps plain "
    "inversion where that rebuilds the source better, so refining never does worse than 0.",
    "2. **Sketch-Block Spectrum Guide**: for the first 60% of the steps the low frequencies of the first 4 blocks' "
    "attention features are pulled toward the source: layout and motion stay, the target prompt changes the "
    "content. Strength 1 is a good start; raise it if the layout drifts, lower it if the edit is too weak.",
    "3. **Modulated DDIM Sampler** applies the guide in SamplerCustomAdvanced, from DDIM Invert's `noise`, on the "
    "same SIGMAS.",
    "4. **Save**: the edit alone (`video/FADE_edit`) and *source | edit* side by side (`video/FADE_side_by_side`), "
    "at 16 fps.",
    "",
    "Optional: connect a MASK (white = edit region) to the Modulated DDIM Sampler to keep the background; its "
    "`blend_fraction` widget appears when a mask is connected.",
    "",
    MODELS_LINE + " 33 frames at 832x480 take about 10 GB of VRAM for the edit (`memory`: fast), 6 GB with "
    "`offload activations` (estimates; README, VRAM table).",
])


A14B_MODELS_LINE = ("**Models** (Comfy-Org repackaged; ComfyUI offers to download them): "
                    "`wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors` and "
                    "`wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors` in `models/diffusion_models`, "
                    "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` in `models/text_encoders`, `wan_2.1_vae.safetensors` "
                    "in `models/vae`.")

PAIR_LINE = ("**Wan Expert Pair Guider** samples both experts in one SamplerCustomAdvanced: the high-noise model on "
             "the steps that start at sigma >= `boundary` (0.875 for text-to-video, 0.900 for image-to-video), the "
             "low-noise model on the rest. The split step follows from the SIGMAS, so any step count works, and only "
             "one expert needs to be in VRAM at a time (ComfyUI swaps them).")

FREEINIT_A14B_NOTE = "\n".join([
    "## FreeInit with Wan 2.2 T2V A14B (two experts)",
    "",
    "**FreeInit** samples the video several times; between passes the result's spatio-temporal low frequencies "
    "are kept and the high frequencies drawn fresh, which improves temporal consistency.",
    "",
    "* " + PAIR_LINE,
    "* **FreeInit** is attached to the high-noise expert (either works): every pass runs high -> low, and the next "
    "pass starts from the low-noise expert's clean result. `passes` = 3 costs 3x the time; the progress bar counts "
    "every pass and both experts.",
    "* **3D Low-Pass Filter**: d_s = d_t = 0.25 is the paper's default.",
    "* Do not use two KSamplerAdvanced nodes with FreeInit: a pass would end at the boundary with noise left, so "
    "FreeInit refuses that schedule.",
    "",
    A14B_MODELS_LINE + " 33 frames at 832x480: about 17 GB of VRAM with the fp8 experts, one resident at a time; "
    "about 31 GB if both stay loaded (estimates, not measured; README, VRAM table).",
])


def _sampler_custom_advanced(col: Column, noise, guider, sampler, sigmas, latent, **kwargs):
    """A SamplerCustomAdvanced in `col`, wired to (node, output) noise / guider / latent and SAMPLER, SIGMAS."""
    run = col.add("SamplerCustomAdvanced", 110, **kwargs)
    col.g.link(noise[0], noise[1], run, "noise")
    col.g.link(guider[0], guider[1], run, "guider")
    col.g.link(sampler, "SAMPLER", run, "sampler")
    col.g.link(sigmas, "SIGMAS", run, "sigmas")
    col.g.link(latent[0], latent[1], run, "latent_image")
    return run


def _freeinit_and_prompt(g: UIGraph, model, clip, freeinit_group: str):
    """The FreeInit templates' middle: filter -> FreeInit on `model` (with the filter's response), the prompts and
    the empty video latent. Returns (freeinit, positive, negative, latent)."""
    lpf = g.add("FADE_GaussianLPF3D", (420, 40), (380, 330), color=FADE_COLOR,
                widgets={"filter_type": "gaussian", "spatial_cutoff": 0.25, "temporal_cutoff": 0.25})
    freeinit = g.add("FADE_FreeInit", (420, 410), (380, 150), color=FADE_COLOR,
                     widgets={"passes": 3, "renoise_sigma": 0.0, "coarse_to_fine": False})
    g.link(model, "MODEL", freeinit, "model")
    g.link(lpf, "filter", freeinit, "filter")
    response = g.add("PreviewImage", (420, 600), (380, 200), title="Filter response")
    g.link(lpf, "response", response, "images")
    g.group(freeinit_group, (410, -40, 400, 860))

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
    return freeinit, positive, negative, latent


def freeinit_a14b_workflow(node_classes) -> dict:
    g = UIGraph(node_classes)
    high, low, clip, vae = _load_wan22_a14b(g)
    freeinit, positive, negative, latent = _freeinit_and_prompt(g, high, clip, "2. FreeInit (high-noise expert)")

    col = Column(g, 1300, 40, 330)
    pair = col.add("FADE_ExpertPairGuider", 170, color=FADE_COLOR,
                   widgets={"high_cfg": 3.5, "low_cfg": 3.5, "boundary": 0.875})
    g.link(freeinit, "MODEL", pair, "high_noise_model")
    g.link(low, "MODEL", pair, "low_noise_model")
    g.link(positive, "CONDITIONING", pair, "positive")
    g.link(negative, "CONDITIONING", pair, "negative")
    sigmas = col.add("BasicScheduler", 106, widgets={"scheduler": "simple", "steps": 20, "denoise": 1.0})
    g.link(high, "MODEL", sigmas, "model")
    noise = col.add("RandomNoise", 82, widgets={"noise_seed": 20240711, "noise_seed:control": "fixed"})
    select = col.add("KSamplerSelect", 58, widgets={"sampler_name": "euler"})
    run = _sampler_custom_advanced(col, (noise, "NOISE"), (pair, "GUIDER"), select, sigmas, (latent, "LATENT"))
    g.group("4. Sample both experts", (1290, -40, 350, col.y + 20))
    _decode_and_save(g, (run, "output"), vae, (1680, 40), (1980, 40), "video/FreeInit_A14B")
    g.add("MarkdownNote", (0, 920), (400, 560), title="About this workflow", widgets={"text": FREEINIT_A14B_NOTE})
    return g.to_json()


FADE_A14B_NOTE = "\n".join([
    "## FADE: edit a video with Wan 2.2 T2V A14B (two experts)",
    "",
    "**Before the first run: pick your clip** in **Load Video** (at least 33 frames; cut to 33 and resized to "
    "832x480), describe it in **Source prompt** and the edit in **Target prompt**. Frame counts: 4n+1 (33, 49, 65, "
    "81).",
    "",
    "* " + PAIR_LINE,
    "* **DDIM Invert** gets both experts and the same `boundary`: each inversion step is made by the expert that "
    "samples that step, so the edit starts exactly on the inverted latent. `refine` 6 (the default) makes it "
    "nearly exact.",
    "* **Sketch-Block Spectrum Guide** on the high-noise expert guides both: at each step the sketch features come "
    "from the expert sampling that step (first 4 blocks, first 60% of the steps, across the switch).",
    "* **Modulated DDIM Sampler** in SamplerCustomAdvanced, from DDIM Invert's `noise`, on the same SIGMAS.",
    "* **Inversion check** (bypassed): right-click its title, **Set Group Nodes to Always**, run: it rebuilds the "
    "source with plain `ddim` through both experts (empty prompt, cfg 1) and saves *source | reconstruction*.",
    "* **Save**: `video/FADE_edit` and *source | edit* (`video/FADE_side_by_side`), 16 fps.",
    "",
    A14B_MODELS_LINE + " 33 frames at 832x480, one expert resident at a time: about 29 GB of VRAM for the edit "
    "with `memory` fast, 20 GB with `offload activations` (estimates, not measured; README, VRAM table).",
])


def freeinit_workflow(node_classes) -> dict:
    g = UIGraph(node_classes)
    model, clip, vae = _load_wan(g)
    freeinit, positive, negative, latent = _freeinit_and_prompt(g, model, clip, "2. FreeInit")

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


def fade_workflow(node_classes, expert_pair=False) -> dict:
    """expert_pair: the Wan 2.2 A14B edit (both experts invert, guide and sample, each on its part of the schedule)."""
    g = UIGraph(node_classes)
    if expert_pair:
        model, low, clip, vae = _load_wan22_a14b(g, x=0, y=40, width=310)
        row2, row1_height = ROW2 + 140, 900      # two more loaders; the pair guider is taller than BasicGuider
    else:
        model, clip, vae = _load_wan(g, x=0, y=40, width=310)
        row2, row1_height = ROW2, 760

    # Row 1: source video, prompts, inversion check.
    load = g.add("LoadVideo", (COL, 40), (310, 440), widgets={"file": ""})
    col = Column(g, 2 * COL, 40)
    parts = col.add("GetVideoComponents", 70)
    g.link(load, "VIDEO", parts, "video")
    frames = col.add("ImageFromBatch", 82, title="First frames (4n+1)", widgets={"batch_index": 0, "length": 33})
    g.link(parts, "images", frames, "image")
    resize = col.add("ImageScale", 130, title="Resize to 832x480",
                     widgets={"upscale_method": "lanczos", "width": 832, "height": 480, "crop": "center"})
    g.link(frames, "IMAGE", resize, "image")
    encode = col.add("VAEEncode", 46)
    g.link(resize, "IMAGE", encode, "pixels")
    g.link(vae, "VAE", encode, "vae")
    g.group("2. Source video (your clip)", (COL - 10, -40, 2 * COL - 10, row1_height))

    col = Column(g, 3 * COL, 40)
    empty = col.add("CLIPTextEncode", 100, title="Inversion prompt (empty)", widgets={"text": ""})
    source = col.add("CLIPTextEncode", 130, title="Source prompt (describes the clip)", color=GREEN,
                     widgets={"text": "a man riding a bicycle along a city street"})
    target = col.add("CLIPTextEncode", 130, title="Target prompt (the edit)", color=GREEN,
                     widgets={"text": "a knight in shining armour riding a bicycle along a city street"})
    negative = col.add("CLIPTextEncode", 130, title="Negative prompt", color=RED, widgets={"text": NEGATIVE})
    for node in (empty, source, target, negative):
        g.link(clip, "CLIP", node, "clip")
    g.group("3. Prompts", (3 * COL - 10, -40, COL - 10, row1_height))

    col = Column(g, 0, row2 + 40)
    sigmas = col.add("BasicScheduler", 106, widgets={"scheduler": "simple", "steps": 30, "denoise": 1.0})
    g.link(model, "MODEL", sigmas, "model")
    # refine is left to the node's default, so the workflows follow it when the benchmark moves it
    invert_widgets = {"cfg": 1.0, "boundary": 0.875} if expert_pair else {"cfg": 1.0}
    invert = col.add("FADE_DDIMInvert", 174 if expert_pair else 150, color=FADE_COLOR, widgets=invert_widgets)
    g.link(model, "MODEL", invert, "model")
    if expert_pair:
        g.link(low, "MODEL", invert, "low_noise_model")
    g.link(empty, "CONDITIONING", invert, "conditioning")
    g.link(encode, "LATENT", invert, "latent")
    g.link(sigmas, "SIGMAS", invert, "sigmas")

    # The inversion check: bypassed, so a plain run only edits. Same noise, sigmas and latent as the edit.
    check = dict(color=CHECK_COLOR, mode=4)
    col = Column(g, 4 * COL, 40)
    plain = col.add("KSamplerSelect", 58, widgets={"sampler_name": "ddim"}, **check)
    if expert_pair:
        guider0 = col.add("FADE_ExpertPairGuider", 170, title="Empty prompt, cfg 1",
                          widgets={"high_cfg": 1.0, "low_cfg": 1.0, "boundary": 0.875}, **check)
        g.link(model, "MODEL", guider0, "high_noise_model")
        g.link(low, "MODEL", guider0, "low_noise_model")
        g.link(empty, "CONDITIONING", guider0, "positive")
        g.link(empty, "CONDITIONING", guider0, "negative")
    else:
        guider0 = col.add("BasicGuider", 46, title="Empty prompt, cfg 1", **check)
        g.link(model, "MODEL", guider0, "model")
        g.link(empty, "CONDITIONING", guider0, "conditioning")
    rebuild = _sampler_custom_advanced(col, (invert, "noise"), (guider0, "GUIDER"), plain, sigmas,
                                       (encode, "LATENT"), title="Reconstruct the source", **check)
    decoded0 = col.add("VAEDecode", 46, **check)
    g.link(rebuild, "output", decoded0, "samples")
    g.link(vae, "VAE", decoded0, "vae")
    pair0 = col.add("ImageStitch", 150, title="source | reconstruction",
                    widgets={"direction": "right", "match_image_size": True}, **check)
    g.link(resize, "IMAGE", pair0, "image1")
    g.link(decoded0, "IMAGE", pair0, "image2")
    col = Column(g, 5 * COL, 40)
    video0 = col.add("CreateVideo", 78, widgets={"fps": 16.0}, **check)
    g.link(pair0, "IMAGE", video0, "images")
    save0 = col.add("SaveVideo", 480, widgets={"filename_prefix": "video/FADE_inversion_check"}, **check)
    g.link(video0, "VIDEO", save0, "video")
    g.group("Inversion check (bypassed, see the Note)", (4 * COL - 10, -40, 2 * COL - 10, row1_height),
            color="#88883a")

    # Row 2: filter and guide, the edit, the outputs.
    lpf = g.add("FADE_GaussianLPF3D", (COL, row2 + 40), (320, 400), color=FADE_COLOR,
                title="3D Low-Pass Filter (official FADE box)",
                widgets={"filter_type": "box", "spatial_cutoff": 0.67, "temporal_cutoff": 1.0})
    guide = g.add("FADE_SketchSpectrumGuide", (2 * COL, row2 + 40), (310, 420), color=FADE_COLOR,
                  widgets={"sketch_blocks": 4, "strength": 1.0, "guided_fraction": 0.6, "feature": "attention",
                           "spectrum": "2d", "normalisation": "unit", "ratio_min": 0.33, "ratio_max": 3.0,
                           "memory": "fast"})
    g.link(model, "MODEL", guide, "model")
    g.link(invert, "trajectory", guide, "trajectory")
    g.link(source, "CONDITIONING", guide, "source_conditioning")
    g.link(lpf, "filter", guide, "filter")
    g.group("4. FADE: invert, filter, guide", (-10, row2 - 40, 3 * COL - 10, 760))

    col = Column(g, 3 * COL, row2 + 40)
    if expert_pair:
        guider = col.add("FADE_ExpertPairGuider", 170, color=FADE_COLOR,
                         widgets={"high_cfg": 3.5, "low_cfg": 3.5, "boundary": 0.875})
        g.link(guide, "MODEL", guider, "high_noise_model")
        g.link(low, "MODEL", guider, "low_noise_model")
    else:
        guider = col.add("CFGGuider", 100, widgets={"cfg": 5.0})
        g.link(guide, "MODEL", guider, "model")
    g.link(target, "CONDITIONING", guider, "positive")
    g.link(negative, "CONDITIONING", guider, "negative")
    sampler = col.add("FADE_ModulatedDDIMSampler", 80, color=FADE_COLOR, widgets={"blend_fraction": 0.7})
    run = _sampler_custom_advanced(col, (invert, "noise"), (guider, "GUIDER"), sampler, sigmas, (encode, "LATENT"))
    decoded = col.add("VAEDecode", 46)
    g.link(run, "output", decoded, "samples")
    g.link(vae, "VAE", decoded, "vae")
    g.group("5. Edit", (3 * COL - 10, row2 - 40, COL - 10, 760))

    col = Column(g, 4 * COL, row2 + 40)
    video = col.add("CreateVideo", 78, widgets={"fps": 16.0})
    g.link(decoded, "IMAGE", video, "images")
    save = col.add("SaveVideo", 460, widgets={"filename_prefix": "video/FADE_edit"})
    g.link(video, "VIDEO", save, "video")
    col = Column(g, 5 * COL, row2 + 40)
    pair = col.add("ImageStitch", 150, title="source | edit", widgets={"direction": "right", "match_image_size": True})
    g.link(resize, "IMAGE", pair, "image1")
    g.link(decoded, "IMAGE", pair, "image2")
    video2 = col.add("CreateVideo", 78, widgets={"fps": 16.0})
    g.link(pair, "IMAGE", video2, "images")
    save2 = col.add("SaveVideo", 240, widgets={"filename_prefix": "video/FADE_side_by_side"})
    g.link(video2, "VIDEO", save2, "video")
    g.group("6. Save: the edit, and source | edit", (4 * COL - 10, row2 - 40, 2 * COL - 10, 760))

    g.add("MarkdownNote", (6 * COL + 20, -40), (480, row2 + 760), title="Start here",
          widgets={"text": FADE_A14B_NOTE if expert_pair else FADE_NOTE})
    return g.to_json()


def fade_a14b_workflow(node_classes) -> dict:
    return fade_workflow(node_classes, expert_pair=True)


WORKFLOWS = {"freeinit_wan21_t2v": freeinit_workflow, "fade_video_edit_wan21": fade_workflow,
             "freeinit_wan22_a14b_t2v": freeinit_a14b_workflow, "fade_video_edit_wan22_a14b": fade_a14b_workflow}


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
