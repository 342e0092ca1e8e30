"""What the tools do, as functions the tests cover: the config setup of
tools/train.py and tools/test.py (:mod:`.tool_setup`) and inference on a
user's images and videos (:mod:`.inference`, tools/infer.py)."""
