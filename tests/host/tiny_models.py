"""Tiny synthetic video models built from ComfyUI's own classes and loaders.

Each variant is a random state dict for the real diffusion-model class
(comfy.ldm.*, built with comfy.ops.disable_weight_init so nothing is
initialised twice), loaded the way ComfyUI loads a real file:
  detect=True   comfy.sd.load_diffusion_model_state_dict (UNETLoader's path:
                model_detection must recognise the keys and derive the config);
                write_unet() also puts it in <base>/models/diffusion_models.
  detect=False  model_detection hard-codes full-size configs for these
                (Mochi: everything; Cosmos 1.0: 28/36 blocks + learnable
                pos-emb per block), so the same steps the loader takes after
                detection are done by hand: supported_models.X(config).get_model,
                load_model_weights, ModelPatcher.
Nothing imports comfy at module import time (pytest collects this early).
"""
import dataclasses
import importlib
import math
import os
from pathlib import Path

import harness


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    model_class: str           # diffusion-model class (module:attr)
    supported: str             # comfy.supported_models class the loader must pick
    detect: bool               # loadable via load_diffusion_model_state_dict / UNETLoader
    config: dict               # constructor kwargs == the unet_config ComfyUI uses
    latent_channels: int
    t_stride: int              # VAE temporal compression (0: image model, frames are the batch)
    s_stride: int              # VAE spatial compression
    patch: tuple               # (t, h, w) patch of the DiT; sd15: (1, 1, 1) (no patching)
    blocks: dict               # where the transformer blocks live: diffusion_model attribute -> count
                               # (sd15: UNet section -> SpatialTransformer count)
    dit_patches: bool          # ("double_block", i) patches_replace supported
    min_host: tuple = (0, 3, 64)   # first ComfyUI version that has this model

    @property
    def video(self):
        return self.t_stride > 0

    @property
    def num_blocks(self):
        return sum(self.blocks.values())


_WAN = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), dim=128, num_heads=1, ffn_dim=256,
            num_layers=4, freq_dim=256, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)

VARIANTS = {
    # Wan 2.1 t2v: detection needs dim == 128 * heads; text_dim is not detected (always 4096).
    "wan21": Variant(
        "wan21", "comfy.ldm.wan.model:WanModel", "WAN21_T2V", True,
        dict(_WAN, in_dim=16, out_dim=16), 16, 4, 8, (1, 2, 2), {"blocks": 4}, True),
    # Wan 2.2 TI2V 5B layout: 48-ch latent, Wan22 VAE (x16); picked as WAN22_T2V by out_dim == 48.
    "wan22_5b": Variant(
        "wan22_5b", "comfy.ldm.wan.model:WanModel", "WAN22_T2V", True,
        dict(_WAN, in_dim=48, out_dim=48), 48, 4, 16, (1, 2, 2), {"blocks": 4}, True),
    # Image-to-video (issue 12). Wan 2.1 I2V: 36 input channels (16 latent + 4 mask + 16 image, concat) and the CLIP
    # vision projection img_emb, which detection reads as model_type i2v.
    "wan21_i2v": Variant(
        "wan21_i2v", "comfy.ldm.wan.model:WanModel", "WAN21_I2V", True,
        dict(_WAN, model_type="i2v", in_dim=36, out_dim=16), 16, 4, 8, (1, 2, 2), {"blocks": 4}, True),
    # Wan 2.2 I2V A14B layout (each expert): the same 36-channel concat, no img_emb, so ComfyUI picks WAN21_T2V.
    "wan22_i2v": Variant(
        "wan22_i2v", "comfy.ldm.wan.model:WanModel", "WAN21_T2V", True,
        dict(_WAN, in_dim=36, out_dim=16), 16, 4, 8, (1, 2, 2), {"blocks": 4}, True),
    # HunyuanVideo: hidden = 128 * heads and axes_dim [16, 56, 56] are fixed by detection.
    "hunyuan_video": Variant(
        "hunyuan_video", "comfy.ldm.hunyuan_video.model:HunyuanVideo", "HunyuanVideo", True,
        dict(image_model="hunyuan_video", in_channels=16, patch_size=[1, 2, 2], out_channels=16, vec_in_dim=768,
             axes_dim=[16, 56, 56], meanflow=False, context_in_dim=4096, hidden_size=128, mlp_ratio=4.0,
             num_heads=1, depth=2, depth_single_blocks=2, theta=256, qkv_bias=True, byt5=False,
             guidance_embed=True),
        16, 4, 8, (1, 2, 2), {"double_blocks": 2, "single_blocks": 2}, True),
    # HunyuanVideo I2V (v1, concat): 33 input channels (16 latent + 16 image + 1 mask), HunyuanVideoI2V.
    "hunyuan_video_i2v": Variant(
        "hunyuan_video_i2v", "comfy.ldm.hunyuan_video.model:HunyuanVideo", "HunyuanVideoI2V", True,
        dict(image_model="hunyuan_video", in_channels=33, patch_size=[1, 2, 2], out_channels=16, vec_in_dim=768,
             axes_dim=[16, 56, 56], meanflow=False, context_in_dim=4096, hidden_size=128, mlp_ratio=4.0,
             num_heads=1, depth=2, depth_single_blocks=2, theta=256, qkv_bias=True, byt5=False,
             guidance_embed=True),
        16, 4, 8, (1, 2, 2), {"double_blocks": 2, "single_blocks": 2}, True),
    # HunyuanVideo 1.5 (ComfyUI v0.3.71+): same class, 32-ch latent (x16 VAE), 1x1x1 patch, Qwen2.5-VL context
    # (3584), the 32-ch image + 1-ch mask concat (in 65 = 32 + 32 + 1), the SigLIP vision projection (1152, which
    # picks HunyuanVideo15) and the cond-type embedding; no CLIP pooled vector, no guidance embedding.
    "hunyuan_video15": Variant(
        "hunyuan_video15", "comfy.ldm.hunyuan_video.model:HunyuanVideo", "HunyuanVideo15", True,
        dict(image_model="hunyuan_video", in_channels=65, patch_size=[1, 1, 1], out_channels=32, vec_in_dim=None,
             axes_dim=[16, 56, 56], meanflow=False, context_in_dim=3584, hidden_size=128, mlp_ratio=4.0,
             num_heads=1, depth=2, depth_single_blocks=2, theta=256, qkv_bias=True, byt5=False,
             guidance_embed=False, use_cond_type_embedding=True, vision_in_dim=1152, meanflow_sum=True),
        32, 4, 16, (1, 1, 1), {"double_blocks": 2, "single_blocks": 2}, True, min_host=(0, 3, 71)),
    # LTXV: detection fixes 32 heads (head_dim = attn2 rows // 32); cross_attention_dim must equal
    # the inner dim; caption_channels (4096) is not detected.
    "ltxv": Variant(
        "ltxv", "comfy.ldm.lightricks.model:LTXVModel", "LTXV", True,
        dict(image_model="ltxv", num_layers=4, attention_head_dim=4, cross_attention_dim=128),
        128, 8, 32, (1, 1, 1), {"transformer_blocks": 4}, True),
    # Mochi: detection is hard-coded to the 10B config. t5_feat_dim is 256 instead of 4096
    # because the caption AttentionPool is t5_feat_dim^2 (50M params at 4096); the block
    # asserts hidden_size_x * mlp_ratio_x == 12288, hence mlp_ratio_x 96.
    "mochi": Variant(
        "mochi", "comfy.ldm.genmo.joint_model.asymm_models_joint:AsymmDiTJoint", "GenmoMochi", False,
        dict(image_model="mochi_preview", depth=4, patch_size=2, num_heads=2, hidden_size_x=128,
             hidden_size_y=64, mlp_ratio_x=96.0, mlp_ratio_y=4.0, learn_sigma=False, in_channels=12,
             qk_norm=True, qkv_bias=False, out_bias=True, attn_drop=0.0, patch_embed_bias=True,
             posenc_preserve_area=True, timestep_mlp_bias=True, attend_to_padding=False,
             timestep_scale=1000.0, use_t5=True, t5_feat_dim=256, t5_token_length=256, rope_theta=10000.0),
        12, 6, 8, (1, 2, 2), {"blocks": 4}, True),
    # Cosmos 1.0 GeneralDIT (7B layout: adaln-lora, learnable extra per-block pos-emb, THWBD blocks);
    # detection forces 28/36 blocks with 4096/5120 channels, so built directly.
    "cosmos1": Variant(
        "cosmos1", "comfy.ldm.cosmos.model:GeneralDIT", "CosmosT2V", False,
        dict(image_model="cosmos", max_img_h=240, max_img_w=240, max_frames=128, in_channels=16,
             out_channels=16, patch_spatial=2, patch_temporal=1, model_channels=128, block_config="FA-CA-MLP",
             concat_padding_mask=True, pos_emb_cls="rope3d", pos_emb_learnable=False,
             pos_emb_interpolation="crop", block_x_format="THWBD", affline_emb_norm=True, use_adaln_lora=True,
             adaln_lora_dim=32, num_blocks=3, num_heads=4, crossattn_emb_channels=1024,
             extra_per_block_abs_pos_emb=True, extra_per_block_abs_pos_emb_type="learnable",
             rope_h_extrapolation_ratio=1.0, rope_w_extrapolation_ratio=1.0, rope_t_extrapolation_ratio=2.0),
        16, 8, 8, (1, 2, 2), {"blocks": 3}, False),
    # Cosmos Predict2 MiniTrainDIT: for channels other than 2048/5120 detection leaves
    # num_blocks/num_heads at the class defaults (10, 16); rope needs head_dim >= 12 -> 256 ch.
    "cosmos_predict2": Variant(
        "cosmos_predict2", "comfy.ldm.cosmos.predict2:MiniTrainDIT", "CosmosT2IPredict2", True,
        dict(image_model="cosmos_predict2", max_img_h=240, max_img_w=240, max_frames=128, in_channels=16,
             out_channels=16, patch_spatial=2, patch_temporal=1, model_channels=256, concat_padding_mask=True,
             crossattn_emb_channels=1024, pos_emb_cls="rope3d", pos_emb_learnable=True,
             pos_emb_interpolation="crop", min_fps=1, max_fps=30, use_adaln_lora=True, adaln_lora_dim=256,
             extra_per_block_abs_pos_emb=False, rope_h_extrapolation_ratio=4.0,
             rope_w_extrapolation_ratio=4.0, rope_t_extrapolation_ratio=1.0),
        16, 4, 8, (1, 2, 2), {"blocks": 10}, False),
    # SD1.5-style UNet (AnimateDiff frame-batch latent [T, 4, H, W]). SD15 matching needs
    # model_channels 320 / context 768; one level, one res block, transformer depth 1.
    "sd15": Variant(
        "sd15", "comfy.ldm.modules.diffusionmodules.openaimodel:UNetModel", "SD15", True,
        dict(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False,
             adm_in_channels=None, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
             transformer_depth=[1], transformer_depth_output=[1, 1], channel_mult=[1],
             transformer_depth_middle=1, use_linear_in_transformer=False, context_dim=768,
             use_temporal_resblock=False, use_temporal_attention=False, num_heads=8, num_head_channels=-1),
        4, 0, 8, (1, 1, 1), {"input_blocks": 1, "middle_block": 1, "output_blocks": 2}, False),
}
NAMES = tuple(VARIANTS)
VIDEO_NAMES = tuple(n for n, v in VARIANTS.items() if v.video)

# Constructor fields newer hosts added to a model's params, with the values that keep the older model.
# HunyuanVideoParams gained these in v0.3.71 (HunyuanVideo 1.5); v0.3.64 rejects them.
NEWER_HOST_FIELDS = {
    "comfy.ldm.hunyuan_video.model:HunyuanVideo": ("HunyuanVideoParams", {
        "use_cond_type_embedding": False, "vision_in_dim": None, "meanflow_sum": False}),
}


def variant(name):
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(NAMES)}") from None


def available(name):
    """Whether the running host has variant `name` (tests skip the others, naming the host)."""
    return harness.version_tuple() >= variant(name).min_host


def params(names):
    """pytest parameters for variants, those the running host lacks marked skip (naming the version they need)."""
    import pytest
    out = []
    for name in names:
        v = variant(name)
        need = ".".join(map(str, v.min_host))
        out.append(pytest.param(name, marks=pytest.mark.skipif(
            not available(name), reason=f"{name} needs ComfyUI >= {need}")))
    return out


def host_config(v):
    """The variant's constructor kwargs for the running host: fields the host's params class requires but the
    variant predates are filled with the values that keep the older model."""
    if not available(v.name):
        raise RuntimeError(f"{v.name} needs ComfyUI >= {'.'.join(map(str, v.min_host))}")
    config = dict(v.config)
    extra = NEWER_HOST_FIELDS.get(v.model_class)
    if extra:
        params_name, defaults = extra
        params = getattr(importlib.import_module(v.model_class.split(":")[0]), params_name, None)
        fields = getattr(params, "__dataclass_fields__", {})
        for key, value in defaults.items():
            if key in fields and key not in config:
                config[key] = value
    return config


# --------------------------------------------------------------------------- weights

def _init_like(key, shape, gen):
    import torch
    if len(shape) <= 1:
        if key.endswith("bias") or key.endswith("beta"):
            return torch.randn(shape, generator=gen) * 0.02
        if key.endswith(("weight", "scale", "gamma")):      # norm scales
            return 1.0 + torch.randn(shape, generator=gen) * 0.02
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return torch.randn(shape, generator=gen) / max(fan_in, 1) ** 0.5


def _diffusion_class(v):
    mod, attr = v.model_class.split(":")
    return getattr(importlib.import_module(mod), attr)


def state_dict(name, seed=0, prefix="model.diffusion_model."):
    """Random fp32 weights for variant `name`, keyed as in a checkpoint (prefix + module key)."""
    harness.configure()
    import torch
    import comfy.ops
    v = variant(name)
    model = _diffusion_class(v)(**host_config(v), device="cpu", operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(int(seed))
    keys = model.state_dict()
    return {prefix + k: _init_like(k, tuple(t.shape), gen) for k, t in keys.items()}


def _check_loaded(v, patcher, sd_unprefixed):
    got = patcher.model.diffusion_model.state_dict()
    missing = sorted(set(got) - set(sd_unprefixed))
    extra = sorted(set(sd_unprefixed) - set(got))
    bad = [k for k in sd_unprefixed if k in got and tuple(got[k].shape) != tuple(sd_unprefixed[k].shape)]
    if missing or extra or bad:
        raise AssertionError(f"{v.name}: loaded model differs from the generated weights: "
                             f"missing={missing[:5]} unexpected={extra[:5]} shape={bad[:5]}")
    mc = patcher.model.model_config
    if type(mc).__name__ != v.supported:
        raise AssertionError(f"{v.name}: ComfyUI picked {type(mc).__name__}, expected {v.supported}")
    if v.detect:
        diff = {k: (mc.unet_config.get(k), val) for k, val in v.config.items()
                if k in mc.unet_config and _norm(mc.unet_config[k]) != _norm(val)}
        if diff:
            raise AssertionError(f"{v.name}: detected config differs (detected, ours): {diff}")


def _norm(x):
    return list(x) if isinstance(x, (tuple, list)) else x


def build(name, seed=0, inference=True):
    """ModelPatcher for variant `name`, loaded through ComfyUI's loader (see module doc).

    inference=True loads under torch.inference_mode() as UNETLoader does inside the
    executor, so weights are inference tensors exactly as in a real graph.
    """
    harness.configure()
    import torch
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    v = variant(name)
    sd = state_dict(name, seed)
    plain = {k[len("model.diffusion_model."):]: t for k, t in sd.items()}
    with torch.inference_mode(inference):
        if v.detect:
            patcher = comfy.sd.load_diffusion_model_state_dict(dict(sd))
            if patcher is None:
                raise AssertionError(f"{name}: ComfyUI's model detection did not recognise the state dict")
        else:
            mc = getattr(comfy.supported_models, v.supported)(host_config(v))
            mc.set_inference_dtype(torch.float32, None)
            model = mc.get_model({}, "")
            model = model.to(mm.unet_offload_device())
            model.load_model_weights(dict(plain), "")
            patcher = comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                                       offload_device=mm.unet_offload_device())
    _check_loaded(v, patcher, plain)
    return patcher


def write_unet(name, seed=0, filename=None):
    """Save variant `name` to <base>/models/diffusion_models/<filename>; returns the UNETLoader unet_name."""
    v = variant(name)
    if not v.detect:
        raise ValueError(f"{name} cannot be loaded by UNETLoader: ComfyUI's detection hard-codes its full size")
    h = harness.configure()
    import safetensors.torch
    filename = filename or f"fadetest_{name}_s{seed}.safetensors"
    path = h.models_dir / "diffusion_models" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(state_dict(name, seed), str(tmp))
        os.replace(tmp, path)
    return filename


# --------------------------------------------------------------------------- latents / conds

def latent_shape(name, frames, height, width, batch_size=1):
    """VAE-space latent shape for a pixel-space clip of `frames` x `height` x `width`.

    Video: [B, C, (frames-1)//t_stride + 1, H//s, W//s] (the Empty*LatentVideo
    formulas); sd15: [frames * B, 4, H//8, W//8] (AnimateDiff frame batch).
    """
    v = variant(name)
    h, w = height // v.s_stride, width // v.s_stride
    if not v.video:
        return (frames * batch_size, v.latent_channels, h, w)
    return (batch_size, v.latent_channels, (frames - 1) // v.t_stride + 1, h, w)


def latent(name, frames, height, width, batch_size=1, seed=None):
    """LATENT dict {"samples": ...} in VAE space for a pixel clip of frames x height x width.

    seed=None gives zeros (like the empty-latent nodes); otherwise
    latent_format.process_out(N(0, 1)), i.e. standard normal in model space.
    """
    harness.configure()
    import torch
    v = variant(name)
    shape = latent_shape(name, frames, height, width, batch_size)
    if any(s <= 0 for s in shape):
        raise ValueError(f"{name}: {frames}x{height}x{width} gives an empty latent {shape}")
    ph, pw = v.patch[1], v.patch[2]
    if shape[-2] % ph or shape[-1] % pw:
        raise ValueError(f"{name}: latent {shape[-2:]} not divisible by the {v.patch} patch")
    if seed is None:
        return {"samples": torch.zeros(shape)}
    x = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    return {"samples": latent_format(name).process_out(x)}


def latent_format(name):
    harness.configure()
    import comfy.supported_models
    return getattr(comfy.supported_models, variant(name).supported).latent_format()


def conditioning(name, seed=0, text="", batch=1):
    """Random CONDITIONING for variant `name`: [[cond (B, L, D), extras]] (pooled_output,
    attention_mask where the real encoder provides them). Same generator as FADETEST_TextConditioning."""
    variant(name)
    return harness.testing_pack_file("fadetest_cond").make_conditioning(name, seed=seed, text=text, batch=batch)


def sample(model, latent_dict, positive, negative, steps=3, cfg=2.0, seed=0, sampler_name="euler",
           scheduler="simple", denoise=1.0, inference=True):
    """The KSampler node's path (nodes.common_ksampler) through comfy.sample.sample; returns VAE-space samples."""
    harness.configure()
    import torch
    import comfy.sample
    with torch.inference_mode(inference):
        x = comfy.sample.fix_empty_latent_channels(model, latent_dict["samples"])
        noise = comfy.sample.prepare_noise(x, seed, latent_dict.get("batch_index"))
        return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, x,
                                   denoise=denoise, noise_mask=latent_dict.get("noise_mask"),
                                   disable_pbar=True, seed=seed)


def expert_pair(name="wan21", seeds=(0, 1)):
    """(high-noise, low-noise) experts: two tiny models of one layout with different weights, as Wan 2.2 A14B's
    two files are two WanModels of the same config."""
    return build(name, seed=seeds[0]), build(name, seed=seeds[1])


# Image-to-video conditioning as ComfyUI's nodes build it (issue 12).
I2V_CONCAT = ("wan21_i2v", "wan22_i2v", "hunyuan_video_i2v")   # image in the conditioning (concat channels)
I2V_PINNED = ("wan22_5b", "hunyuan_video")     # image in the sampled latent (noise_mask; Hunyuan "v2 (replace)")


def i2v_conditioning(name, conditioning_in, shape, seed=0, image_frames=1):
    """WanImageToVideo / HunyuanImageToVideo ('v1 (concat)'): the encoded start image as concat_latent_image
    (VAE space, later frames the encoding of grey for Wan, the image's latent length for Hunyuan) and concat_mask
    0 on the image's latent frames; Wan 2.1 I2V also gets a CLIP vision output (257 x 1280)."""
    harness.configure()
    import types
    import torch
    import node_helpers
    if name not in I2V_CONCAT:
        raise ValueError(f"{name} takes no concat image conditioning; known: {I2V_CONCAT}")
    gen = torch.Generator().manual_seed(int(seed))
    image = latent_format(name).process_out(torch.randn(shape, generator=gen))
    mask = torch.ones((1, 1, shape[2], shape[3], shape[4]))
    mask[:, :, :image_frames] = 0.0
    values = {"concat_latent_image": image, "concat_mask": mask}
    if name == "wan21_i2v":
        values["clip_vision_output"] = types.SimpleNamespace(
            penultimate_hidden_states=torch.randn((1, 257, 1280), generator=gen))
    return node_helpers.conditioning_set_values(conditioning_in, values)


def ti2v_latent(name, shape, seed=0, image_frames=1):
    """Wan22ImageToVideoLatent (HunyuanImageToVideo 'v2 (replace)' likewise, plus guiding_frame_index on the
    conditioning): the start image's latent in the first latent frame(s) of an otherwise empty latent, noise_mask 0
    there (the sampler pins those frames to the image)."""
    harness.configure()
    import torch
    if name not in I2V_PINNED:
        raise ValueError(f"{name} does not pin image frames in the latent; known: {I2V_PINNED}")
    samples = torch.zeros(shape)
    gen = torch.Generator().manual_seed(int(seed))
    samples[:, :, :image_frames] = latent_format(name).process_out(
        torch.randn((shape[0], shape[1], image_frames) + tuple(shape[3:]), generator=gen))
    mask = torch.ones((shape[0], 1) + tuple(shape[2:]))
    mask[:, :, :image_frames] = 0.0
    return {"samples": samples, "noise_mask": mask}


def tiny_vae(kind="wan21", seed=0):
    """comfy.sd.VAE with narrow Wan 2.1 ('wan21') / 2.2 ('wan22' or 'wan22_5b') weights; see fadetest_vae."""
    harness.configure()
    mod = harness.testing_pack_file("fadetest_vae")
    return mod.make_tiny_vae(mod.FAMILY_TO_KIND.get(kind, kind), seed=seed)


def model_root():
    """<base>/models (UNETLoader looks in its diffusion_models/)."""
    return Path(harness.configure().models_dir)


# --------------------------------------------------------------------------- full-size layouts (benchmarks)
def wan21_config(dim, heads, ffn, blocks, text_dim=4096, latent_channels=16):
    """unet_config as ComfyUI's model detection derives it from a Wan 2.1 t2v checkpoint."""
    return dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), in_dim=latent_channels, dim=dim,
                ffn_dim=ffn, freq_dim=256, text_dim=text_dim, out_dim=latent_channels, num_heads=heads,
                num_layers=blocks, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)


def build_wan21_on_device(config, dtype_name="auto", seed=0):
    """ModelPatcher around a random-weight WanModel, built directly on the load device (a 1.3B state dict made on
    the CPU first would cost minutes); dtype as ComfyUI's loader would pick it unless given."""
    import torch
    import comfy.ldm.wan.model
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops
    import comfy.supported_models
    load_device = mm.get_torch_device()
    meta = comfy.ldm.wan.model.WanModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    params = sum(p.numel() for p in meta.parameters())
    del meta
    model_config = comfy.supported_models.WAN21_T2V(dict(config))
    supported = list(model_config.supported_inference_dtypes)
    dtype = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    if dtype is None:
        dtype = mm.unet_dtype(model_params=params, supported_dtypes=supported)
    model_config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, supported))
    with torch.inference_mode():     # as UNETLoader runs inside the executor: weights are inference tensors
        model = model_config.get_model({}, "", device=load_device)
        random_init_(model.diffusion_model, load_device, seed)
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                                   offload_device=mm.unet_offload_device())
    return patcher, params, dtype


def random_init_(module, device, seed):
    """_init_like's scheme, drawn in place on the device: unit-variance activations."""
    import torch
    gen = torch.Generator(device=device).manual_seed(int(seed))
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=gen, device=device, dtype=torch.float32)
        if p.ndim <= 1:
            value = 1.0 + 0.02 * noise if name.endswith(("weight", "scale", "gamma")) else 0.02 * noise
        else:
            value = noise / math.sqrt(max(1, math.prod(p.shape[1:])))
        p.copy_(value)
