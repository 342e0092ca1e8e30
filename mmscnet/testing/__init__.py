"""Toy datasets (:mod:`.toy_data`) for the demos, the tests and
``tools/misc/generate_toy_data.py``: small COCO-style, keypoint,
segmentation and classification sets drawn from a seed, with no download."""
