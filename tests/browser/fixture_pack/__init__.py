"""Browser-tier fixture pack (test-only): serves tests' own workflows in the template browser, like a real pack's.

It also registers a placeholder for any core model-loader node that failed to import here (UpscaleModelLoader
needs spandrel, which CPU CI does not install). Frontend 1.27.10 maps these loader ids to node definitions when the
first combo widget is built (useModelToNodeStore.registerDefaults); a missing one makes every ckpt_name / vae_name /
lora_name combo throw "Cannot read properties of undefined (reading 'name')", so VAELoader could not be created.
Core nodes load before custom nodes, so only ids still missing at this point get a placeholder.
"""
import nodes

FRONTEND_MODEL_LOADERS = ("CheckpointLoaderSimple", "ImageOnlyCheckpointLoader", "LoraLoader", "LoraLoaderModelOnly",
                          "VAELoader", "ControlNetLoader", "UNETLoader", "UpscaleModelLoader", "StyleModelLoader",
                          "GLIGENLoader")


def _placeholder(node_id):
    class Placeholder:
        CATEGORY = "_fadetest"
        RETURN_TYPES = ()
        FUNCTION = "run"
        DESCRIPTION = f"Test placeholder: core {node_id} did not import in this environment."

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            raise RuntimeError(f"{node_id} placeholder cannot run")

    Placeholder.__name__ = f"Placeholder{node_id}"
    return Placeholder


NODE_CLASS_MAPPINGS = {node_id: _placeholder(node_id) for node_id in FRONTEND_MODEL_LOADERS
                       if node_id not in nodes.NODE_CLASS_MAPPINGS}
