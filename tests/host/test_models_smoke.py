"""Host-tier smoke tests: the tiny models, the stand-in nodes and the harness itself.

Uses core nodes only, so it does not depend on which FADE nodes exist yet.
"""
import pytest
import torch

import harness
import tiny_models as tm

pytestmark = pytest.mark.host


@pytest.mark.parametrize("name", tm.params(tm.NAMES))
def test_tiny_model_samples(name):
    v = tm.variant(name)
    model = tm.build(name)
    assert type(model.model.model_config).__name__ == v.supported
    # Loaded like UNETLoader inside the executor: weights are inference tensors.
    assert next(model.model.diffusion_model.parameters()).is_inference()
    for attr, n in v.blocks.items():
        if name != "sd15":
            assert len(getattr(model.model.diffusion_model, attr)) == n
    # 3 latent frames (4 for sd15), 2x2 patches per frame side: cheap but not degenerate.
    frames = 1 + 2 * v.t_stride if v.video else 4
    size = 2 * v.s_stride * max(v.patch[1], 2)
    lat = tm.latent(name, frames, size, size)
    out = tm.sample(model, lat, tm.conditioning(name, 0, "a cat"), tm.conditioning(name, 0, ""), steps=3, cfg=2.0)
    assert out.shape == lat["samples"].shape
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0


def test_latent_layouts():
    assert tm.latent_shape("wan21", 81, 480, 832) == (1, 16, 21, 60, 104)
    assert tm.latent_shape("wan22_5b", 121, 704, 1280) == (1, 48, 31, 44, 80)
    assert tm.latent_shape("ltxv", 97, 512, 768) == (1, 128, 13, 16, 24)
    assert tm.latent_shape("mochi", 31, 480, 848) == (1, 12, 6, 60, 106)
    assert tm.latent_shape("cosmos1", 121, 704, 1280) == (1, 16, 16, 88, 160)
    assert tm.latent_shape("sd15", 16, 512, 512) == (16, 4, 64, 64)
    # Seeded latents are standard normal in model space.
    lat = tm.latent("wan21", 9, 64, 64, seed=3)["samples"]
    z = tm.latent_format("wan21").process_in(lat)
    assert abs(z.std().item() - 1.0) < 0.2


def test_conditioning_is_seeded_by_text():
    a = tm.conditioning("wan21", 0, "a cat")[0][0]
    assert torch.equal(a, tm.conditioning("wan21", 0, "a cat")[0][0])
    assert not torch.equal(a, tm.conditioning("wan21", 0, "a dog")[0][0])
    assert a.shape[-1] == 4096
    hy = tm.conditioning("hunyuan_video", 0, "x")[0][1]
    assert hy["pooled_output"].shape == (1, 768)


def test_pack_loaded_through_comfy_loader(comfy):
    import nodes
    assert harness.PACK_DIR_NAME in nodes.LOADED_MODULE_DIRS
    pack = harness.pack_module()
    assert callable(pack.comfy_entrypoint)
    assert pack.__name__ == comfy.pack_module_name
    assert {"FADETEST_TextConditioning", "FADETEST_TinyVAE", "FADETEST_Sink"} <= set(comfy.testing_node_ids)


def _t2v_prompt(unet_name, steps=3):
    """What a shipped Wan 2.1 t2v workflow looks like in API format (real loaders)."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                       "type": "wan", "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "6": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 7, "steps": steps, "cfg": 2.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["5", 0]}},
        "9": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 16.0}},
        "10": {"class_type": "SaveVideo", "inputs": {"video": ["9", 0], "filename_prefix": "fadetest/t2v",
                                                      "format": "auto", "codec": "auto"}},
    }


def test_workflow_standins_run_end_to_end(comfy):
    unet = tm.write_unet("wan21")
    prompt = harness.swap_standins(_t2v_prompt(unet), family="wan21")
    assert "2" not in prompt and prompt["3"]["class_type"] == "FADETEST_TextConditioning"
    res = harness.run_prompt(prompt)
    assert res.success and "10" in res
    saved = res["10"]["images"][0]
    assert (comfy.base_dir / "output" / saved["subfolder"] / saved["filename"]).is_file()
    lat = res.output("7")["samples"]
    assert lat.shape == (1, 16, 3, 8, 8) and torch.isfinite(lat).all()
    assert res.output("8").shape == (9, 64, 64, 3)
    # main.py-style progress hook: one event per KSampler step, attributed to the node.
    assert len(res.progress("7")) == 3
    assert {"execution_start", "executing", "executed", "execution_success"} <= set(res.event_types)


def test_run_prompt_reports_node_errors(comfy):
    prompt = {
        "1": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                                  "batch_size": 1}},
        "2": {"class_type": "FADETEST_TextConditioning", "inputs": {"family": "wan21", "text": "x", "seed": 0}},
        # A LATENT wired into a CONDITIONING input must fail validation, not run.
        "3": {"class_type": "FADETEST_Sink", "inputs": {"value": ["1", 0]}},
        "4": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["1", 0], "start": 0.0,
                                                                       "end": 1.0}},
        "5": {"class_type": "FADETEST_Sink", "inputs": {"value": ["4", 0]}},
    }
    with pytest.raises(harness.PromptValidationError, match="return_type_mismatch|Return type mismatch"):
        harness.run_prompt(prompt)
    del prompt["4"], prompt["5"]
    res = harness.run_prompt(prompt)
    assert "LATENT Tensor(1, 16, 3, 8, 8)" in res["3"]["text"][0]


def test_run_prompt_raises_execution_errors(comfy):
    # A 48-ch latent decoded by a 16-ch VAE raises inside VAEDecode: an in-node
    # exception, the path our own nodes' errors take.
    prompt = {
        "1": {"class_type": "Wan22ImageToVideoLatent", "inputs": {"vae": ["2", 0], "width": 64, "height": 64,
                                                                  "length": 9, "batch_size": 1}},
        "2": {"class_type": "FADETEST_TinyVAE", "inputs": {"kind": "wan21", "seed": 0}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 0]}},
        "4": {"class_type": "FADETEST_Sink", "inputs": {"value": ["3", 0]}},
    }
    with pytest.raises(harness.PromptExecutionError) as err:
        harness.run_prompt(prompt)
    assert err.value.node_id == "3" and err.value.node_type == "VAEDecode"
    assert err.value.exception_message
    res = harness.run_prompt(prompt, check=False)
    assert not res.success and res.error["node_id"] == "3"


def test_interrupt_stops_inside_sampler(comfy):
    unet = tm.write_unet("wan21")
    prompt = harness.swap_standins(_t2v_prompt(unet, steps=6), family="wan21")
    with pytest.raises(harness.PromptInterrupted) as err:
        harness.run_prompt(prompt, interrupt_after_progress=2)
    assert len(err.value.result.progress("7")) == 2     # stopped at the next step's hook
    assert err.value.result.interrupted


def test_call_node_directly(comfy):
    cond = harness.call_node("FADETEST_TextConditioning", family="ltxv", text="t", seed=1)[0]
    assert cond[0][0].shape == (1, 12, 4096) and cond[0][0].is_inference()
    assert cond[0][1]["attention_mask"].sum() == 8
    lat = harness.call_node("EmptyHunyuanLatentVideo", width=64, height=64, length=9, batch_size=1)[0]
    assert lat["samples"].shape == (1, 16, 3, 8, 8)
    vae = harness.call_node("FADETEST_TinyVAE", kind="wan22_5b", seed=0)[0]
    assert vae.latent_channels == 48 and vae.spacial_compression_decode() == 16


def test_video_to_video_standins(comfy):
    """The edit-workflow shape: LoadVideo -> components -> resize -> encode -> sample -> decode -> save."""
    video = harness.write_input_video(frames=9, height=48, width=48, fps=8)
    unet = tm.write_unet("wan21")
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": video}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "bilinear",
                                                     "width": 64, "height": 64, "crop": "disabled"}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["4", 0]}},
        "6": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "7": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5.safetensors", "type": "wan"}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["7", 0]}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["7", 0]}},
        "10": {"class_type": "KSampler", "inputs": {"model": ["6", 0], "seed": 1, "steps": 4, "cfg": 2.0,
                                                    "sampler_name": "euler", "scheduler": "simple",
                                                    "positive": ["8", 0], "negative": ["9", 0],
                                                    "latent_image": ["5", 0], "denoise": 0.5}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["4", 0]}},
        "12": {"class_type": "CreateVideo", "inputs": {"images": ["11", 0], "fps": ["2", 2]}},
        "13": {"class_type": "SaveVideo", "inputs": {"video": ["12", 0], "filename_prefix": "fadetest/v2v",
                                                     "format": "auto", "codec": "auto"}},
    }
    res = harness.run_prompt(harness.swap_standins(prompt, family="wan21", unet_name=unet))
    assert res.output("3").shape == (9, 64, 64, 3)
    assert res.output("5")["samples"].shape == (1, 16, 3, 8, 8)
    assert res.output("11").shape == (9, 64, 64, 3)
    assert float(res.output("2", 2)) == 8.0
    assert len(res.progress("10")) == 4          # KSampler denoise<1 still runs `steps` steps
