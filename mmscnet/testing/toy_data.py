"""A small, deterministic COCO-format dataset that a detector learns on a CPU.

Each image holds one to three non-overlapping objects of three classes:
``person`` (a stick figure with the 17 COCO keypoints), ``ball`` (a disc) and
``box`` (a rotated rectangle), on a noisy gradient background. Annotations
carry boxes, polygon masks (traced from the drawn pixels), areas and, for
persons, COCO-style keypoints, so detection, instance segmentation and
keypoint work can all use it.

:func:`generate_toy_keypoints` writes a person-only set for top-down keypoint
models, whose poses vary (limb angles, scale, facing, cut by the border,
occluded) so that keypoint AP measures something.
"""
import json
import os
import os.path as osp

import numpy as np

CLASSES = ('person', 'ball', 'box')
KEYPOINTS = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
             'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
             'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
             'right_knee', 'left_ankle', 'right_ankle')
# COCO's person skeleton, 1-based keypoint indices.
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13],
            [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3],
            [2, 4], [3, 5], [4, 6], [5, 7]]
# Each class has its own colour family, so that a detector trained for minutes
# separates them.
_HUES = {
    'person': (0, 20),
    'ball': (100, 130),
    'box': (50, 80)
}  # OpenCV hue, 0..179


def _colour(rng, name):
    import cv2
    hsv = np.uint8([[[
        rng.randint(*_HUES[name]),
        rng.randint(160, 256),
        rng.randint(150, 256)
    ]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _person(rng, cx, cy, h):
    """Stick figure of height h centred at (cx, cy): its 17 keypoints and
    limbs."""
    u = h / 8.0
    lean = rng.uniform(-0.6, 0.6) * u
    arm = rng.uniform(-1.5, 1.5) * u
    kp = {
        'nose': (cx, cy - 3.2 * u),
        'left_eye': (cx + 0.3 * u, cy - 3.45 * u),
        'right_eye': (cx - 0.3 * u, cy - 3.45 * u),
        'left_ear': (cx + 0.6 * u, cy - 3.3 * u),
        'right_ear': (cx - 0.6 * u, cy - 3.3 * u),
        'left_shoulder': (cx + 1.0 * u, cy - 2.2 * u),
        'right_shoulder': (cx - 1.0 * u, cy - 2.2 * u),
        'left_elbow': (cx + 1.6 * u, cy - 1.0 * u + arm),
        'right_elbow': (cx - 1.6 * u, cy - 1.0 * u - arm),
        'left_wrist': (cx + 2.2 * u, cy + 0.0 * u + arm),
        'right_wrist': (cx - 2.2 * u, cy - arm),
        'left_hip': (cx + 0.7 * u + lean, cy + 0.6 * u),
        'right_hip': (cx - 0.7 * u + lean, cy + 0.6 * u),
        'left_knee': (cx + 1.0 * u + lean, cy + 2.3 * u),
        'right_knee': (cx - 1.0 * u + lean, cy + 2.3 * u),
        'left_ankle': (cx + 1.2 * u + lean, cy + 3.9 * u),
        'right_ankle': (cx - 1.2 * u + lean, cy + 3.9 * u),
    }
    limbs = [(a - 1, b - 1) for a, b in SKELETON if a > 5 and b > 5]
    return [kp[k] for k in KEYPOINTS], limbs, u


def _draw(rng, name, cx, cy, size, canvas_hw):
    """Binary mask of one object (and its keypoints for a person)."""
    import cv2
    mask = np.zeros(canvas_hw, np.uint8)
    keypoints = None
    if name == 'ball':
        cv2.circle(mask, (int(cx), int(cy)), int(size / 2), 1, -1)
    elif name == 'box':
        rect = ((float(cx), float(cy)), (size, size * rng.uniform(0.6, 1.0)),
                rng.uniform(0, 90))
        cv2.fillPoly(mask, [cv2.boxPoints(rect).round().astype(np.int32)], 1)
    else:
        keypoints, limbs, u = _person(rng, cx, cy, size)
        width = max(2, int(round(0.55 * u)))
        for a, b in limbs:
            pa, pb = keypoints[a], keypoints[b]
            cv2.line(mask, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])),
                     1, width)
        cv2.circle(mask, (int(cx), int(cy - 3.2 * u)), int(0.9 * u), 1, -1)
        neck = (int(cx), int(cy - 2.3 * u))
        hip = (int(cx + (keypoints[11][0] + keypoints[12][0] - 2 * cx) / 2),
               int(cy + 0.6 * u))
        cv2.line(mask, neck, hip, 1, width + 1)
    return mask, keypoints


def _annotation(mask, name, keypoints):
    import cv2
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = [
        c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3
    ]
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    ann = dict(
        category_id=CLASSES.index(name) + 1,
        segmentation=polygons,
        area=float(mask.sum()),
        iscrowd=0,
        bbox=[x0, y0,
              float(xs.max()) + 1 - x0,
              float(ys.max()) + 1 - y0])
    if keypoints is not None:
        ann['keypoints'] = [
            v for x, y in keypoints for v in (round(x, 2), round(y, 2), 2)
        ]
        ann['num_keypoints'] = len(keypoints)
    return ann


def _scene(rng, hw, max_objects, min_objects=1):
    """An image and its objects as (class name, binary mask, keypoints or
    None)."""
    import cv2
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 190, size=3)
    slope = rng.uniform(-0.4, 0.4, size=(3, 2))
    img = np.stack(
        [base[c] + slope[c, 0] * yy + slope[c, 1] * xx for c in range(3)], -1)
    img += rng.normal(0, 8, size=img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    taken = np.zeros(hw, bool)
    objects = []
    for _ in range(rng.randint(min_objects, max_objects + 1)):
        name = CLASSES[rng.randint(len(CLASSES))]
        for _attempt in range(20):
            size = rng.uniform(0.3, 0.5) * min(h, w) if name == 'person' else \
                rng.uniform(0.18, 0.35) * min(h, w)
            cx, cy = rng.uniform(0.2 * w,
                                 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
            mask, keypoints = _draw(rng, name, cx, cy, size, hw)
            grown = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)
            inside = mask[0].sum() + mask[-1].sum() + mask[:, 0].sum(
            ) + mask[:, -1].sum() == 0
            if inside and mask.sum() > 30 and not (grown & taken).any():
                break
        else:
            continue
        taken |= mask.astype(bool)
        img[mask.astype(bool)] = _colour(rng, name)
        objects.append((name, mask, keypoints))
    return img, objects


def _write_coco(out_dir, num_train, num_val, seed, ann_prefix, description,
                categories, make_image):
    """Both splits of a COCO-format set: ``{out_dir}/{split}/NNNNNN.png`` and
    ``{out_dir}/annotations/{ann_prefix}_{split}.json``. ``make_image(rng)``
    gives an image and its annotations without ids. Returns the json paths."""
    import cv2
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    paths = {}
    for split, count, split_seed in (('train', num_train, seed),
                                     ('val', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            img, anns = make_image(rng)
            # PNG: painted predictions keep the name
            file_name = f"{i:06d}.png"
            cv2.imwrite(osp.join(out_dir, split, file_name), img)
            images.append(
                dict(
                    id=i + 1,
                    file_name=file_name,
                    height=img.shape[0],
                    width=img.shape[1]))
            for ann in anns:
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=i + 1, **ann))
        paths[split] = osp.join(out_dir, 'annotations',
                                f'{ann_prefix}_{split}.json')
        with open(paths[split], 'w') as f:
            json.dump(
                dict(
                    info=dict(description=f'{description}, seed {seed}'),
                    images=images,
                    annotations=annotations,
                    categories=categories), f)
    return paths


def generate_toy_coco(out_dir,
                      num_train=240,
                      num_val=48,
                      image_size=(160, 160),
                      max_objects=3,
                      seed=0):
    """Write ``{out_dir}/{train,val}/*.png`` and
    ``{out_dir}/annotations/instances_{split}.json``.

    The same arguments always give the same files. Returns the paths of the
    two annotation files.
    """
    categories = [
        dict(id=i + 1, name=n, supercategory='shape')
        for i, n in enumerate(CLASSES)
    ]
    categories[0].update(
        supercategory='person', keypoints=list(KEYPOINTS), skeleton=SKELETON)

    def make_image(rng):
        img, objects = _scene(rng, image_size, max_objects)
        return img, [
            _annotation(mask, name, kps) for name, mask, kps in objects
        ]

    return _write_coco(out_dir, num_train, num_val, seed, 'instances',
                       'mmscnet toy COCO', categories, make_image)


# A person facing the camera shows their left side on the image's right; seen
# from behind, on the image's left. The head says which (face with eyes, or
# hair): a cue that survives a horizontal flip, as in real photographs.
_SKIN, _HAIR, _EYE = (150, 180, 225), (30, 40, 60), (20, 20, 20)
_FACE = ('nose', 'left_eye', 'right_eye')


def _posed_person(rng, cx, cy, h, facing_camera):
    """17 keypoints of a person of height h around (cx, cy) in a random pose.
    """
    u = h / 8.0
    # image-x direction of the person's left side
    side = 1.0 if facing_camera else -1.0
    tilt = rng.uniform(-0.25, 0.25)  # torso lean, radians from vertical
    up = np.array([np.sin(tilt), -np.cos(tilt)])
    across = np.array([-up[1], up[0]]) * side  # towards the person's left
    hip_c = np.array([cx, cy + 0.6 * u])
    neck = hip_c + 2.8 * u * up
    kp = {
        'left_shoulder': neck + 1.0 * u * across,
        'right_shoulder': neck - 1.0 * u * across,
        'left_hip': hip_c + 0.7 * u * across,
        'right_hip': hip_c - 0.7 * u * across
    }
    head = neck + 1.0 * u * up
    kp['nose'] = head + 0.1 * u * up
    kp['left_eye'], kp['right_eye'] = (
        head + 0.35 * u * up + s * 0.3 * u * across for s in (1, -1))
    kp['left_ear'], kp['right_ear'] = (
        head + 0.2 * u * up + s * 0.62 * u * across for s in (1, -1))

    def limb(start, angle,
             length):  # angle from "down", positive towards the person's left
        d = np.array([np.sin(angle) * side, np.cos(angle)])
        return start + length * u * d

    for s, name in ((1, 'left'), (-1, 'right')):
        upper = s * rng.uniform(-0.4, 2.6)  # arms: from hanging down to raised
        kp[f'{name}_elbow'] = limb(kp[f'{name}_shoulder'], upper, 1.5)
        kp[f'{name}_wrist'] = limb(kp[f'{name}_elbow'],
                                   upper + s * rng.uniform(-0.5, 1.8), 1.4)
        thigh = s * rng.uniform(-0.35, 0.7)
        kp[f'{name}_knee'] = limb(kp[f'{name}_hip'], thigh, 1.7)
        kp[f'{name}_ankle'] = limb(kp[f'{name}_knee'],
                                   thigh + s * rng.uniform(-0.6, 0.3), 1.6)
    return np.array([kp[k] for k in KEYPOINTS], np.float64), head, u


def _paint_person(canvas, mask, keypoints, head, u, colour, facing_camera):
    import cv2
    pts = {
        k: tuple(int(round(c)) for c in p)
        for k, p in zip(KEYPOINTS, keypoints)
    }
    width = max(2, int(round(0.6 * u)))
    torso = np.array([
        pts['left_shoulder'], pts['right_shoulder'], pts['right_hip'],
        pts['left_hip']
    ], np.int32)
    for target, value in ((canvas, colour), (mask, 1)):
        cv2.fillPoly(target, [torso], value)
        for a, b in SKELETON:
            if a > 5 and b > 5:
                cv2.line(target, pts[KEYPOINTS[a - 1]], pts[KEYPOINTS[b - 1]],
                         value, width)
        cv2.circle(
            target, tuple(int(round(c)) for c in head), int(round(0.8 * u)),
            value if target is mask else (_SKIN if facing_camera else _HAIR),
            -1)
    # Joints a shade darker, as sleeves and trouser legs end there: what makes
    # an elbow findable on a straight arm.
    joint = tuple(int(c * 0.6) for c in colour)
    for name in KEYPOINTS[5:]:
        cv2.circle(canvas, pts[name], max(1, int(round(0.3 * u))), joint, -1)
    if facing_camera:
        for name in ('left_eye', 'right_eye'):
            cv2.circle(canvas, pts[name], max(1, int(round(0.12 * u))), _EYE,
                       -1)


def generate_toy_keypoints(out_dir,
                           num_train=400,
                           num_val=60,
                           image_size=(160, 160),
                           seed=0):
    """Top-down keypoint data: ``{out_dir}/{train,val}/*.png`` and
    ``{out_dir}/annotations/person_keypoints_{split}.json`` (COCO format).

    Each image holds one or two persons (17 COCO keypoints) and up to two
    balls or boxes. Visibility flags follow COCO: 2 visible; 1 labelled but
    hidden (under a ball, a box or another person drawn over it); 0 not
    labelled (out of the image, or the face of a person seen from behind),
    with x = y = 0.
    The same arguments always give the same files.
    """
    categories = [
        dict(
            id=1,
            name='person',
            supercategory='person',
            keypoints=list(KEYPOINTS),
            skeleton=SKELETON)
    ]
    h, w = image_size

    def make_image(rng):
        img, _ = _scene(rng, image_size, max_objects=0, min_objects=0)
        persons = []
        n_persons = rng.randint(1, 3)
        for p in range(n_persons):
            height = rng.uniform(0.45, 0.85) * h / (1.0 + 0.3 *
                                                    (n_persons - 1))
            # One person in four is cut by the image border.
            margin = -0.25 * height if rng.rand() < 0.25 else 0.3 * height
            lo, hi = margin, w - margin
            half = (hi - lo) / 2
            cx = (
                rng.uniform(lo, hi) if n_persons == 1 else rng.uniform(
                    lo + p * half, lo + (p + 1) * half))
            cy = rng.uniform(
                min(0.5 * height, h / 2), max(h - 0.5 * height, h / 2))
            facing = bool(rng.rand() < 0.5)
            keypoints, head, u = _posed_person(rng, cx, cy, height, facing)
            mask = np.zeros((h, w), np.uint8)
            _paint_person(img, mask, keypoints, head, u,
                          _colour(rng, 'person'), facing)
            persons.append((keypoints, mask, facing))
        # Balls and boxes, some of them over a person: what they hide is
        # flagged 1.
        occluder = np.zeros((h, w), np.uint8)
        for _ in range(rng.randint(0, 3)):
            name = ('ball', 'box')[rng.randint(2)]
            size = rng.uniform(0.12, 0.25) * min(h, w)
            obj, _ = _draw(rng, name, rng.uniform(0.1 * w, 0.9 * w),
                           rng.uniform(0.1 * h, 0.9 * h), size, (h, w))
            img[obj.astype(bool)] = _colour(rng, name)
            occluder |= obj
        anns = []
        for p, (keypoints, mask, facing) in enumerate(persons):
            hidden = occluder.astype(
                bool)  # by balls, boxes and persons painted later
            for _, later, _ in persons[p + 1:]:
                hidden |= later.astype(bool)
            mask = mask.astype(bool) & ~hidden
            if mask.sum() < 50:
                continue
            flags = np.full(len(KEYPOINTS), 2)
            xi = np.clip(keypoints[:, 0].round().astype(int), 0, w - 1)
            yi = np.clip(keypoints[:, 1].round().astype(int), 0, h - 1)
            flags[hidden[yi, xi]] = 1
            inside = (keypoints[:, 0] >= 0) & (keypoints[:, 0] < w) & \
                     (keypoints[:, 1] >= 0) & (keypoints[:, 1] < h)
            flags[~inside] = 0
            if not facing:
                flags[[KEYPOINTS.index(k) for k in _FACE]] = 0
            if not (flags > 0).any():
                continue
            ys, xs = np.nonzero(mask)
            x0, y0 = float(xs.min()), float(ys.min())
            kps = [
                v for (x, y), f in zip(keypoints, flags)
                for v in ((round(x, 2), round(y, 2), int(f)) if f else (0, 0,
                                                                        0))
            ]
            anns.append(
                dict(
                    category_id=1,
                    iscrowd=0,
                    area=float(mask.sum()),
                    num_keypoints=int((flags > 0).sum()),
                    keypoints=kps,
                    bbox=[
                        x0, y0,
                        float(xs.max()) + 1 - x0,
                        float(ys.max()) + 1 - y0
                    ]))
        return img, anns

    return _write_coco(out_dir, num_train, num_val, seed, 'person_keypoints',
                       'mmscnet toy keypoints', categories, make_image)


def generate_toy_segmentation(out_dir,
                              num_train=64,
                              num_val=16,
                              image_size=(128, 128),
                              max_objects=3,
                              seed=0):
    """Semantic segmentation in mmseg's folder layout.

    ``{out_dir}/img_dir/{split}/*.png`` and ``{out_dir}/ann_dir/{split}/*.png``
    whose pixels are 0 (background) or 1 + the index of the class in CLASSES.
    """
    import cv2
    for split, count, split_seed in (('train', num_train, seed),
                                     ('val', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        for sub in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(out_dir, sub, split), exist_ok=True)
        for i in range(count):
            img, objects = _scene(rng, image_size, max_objects)
            label = np.zeros(image_size, np.uint8)
            for name, mask, _ in objects:
                label[mask.astype(bool)] = CLASSES.index(name) + 1
            cv2.imwrite(
                osp.join(out_dir, 'img_dir', split, f'{i:06d}.png'), img)
            cv2.imwrite(
                osp.join(out_dir, 'ann_dir', split, f'{i:06d}.png'), label)
    return ('background', ) + CLASSES


def generate_toy_classification(out_dir,
                                num_train=60,
                                num_val=30,
                                image_size=(64, 64),
                                seed=0):
    """One object per image, in mmpretrain's CustomDataset folder layout:
    ``{out_dir}/{split}/{class}/*.png`` (classes balanced, in CLASSES order).
    """
    import cv2
    for split, count, split_seed in (('train', num_train, seed),
                                     ('val', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        for name in CLASSES:
            os.makedirs(osp.join(out_dir, split, name), exist_ok=True)
        made = 0
        while made < count:
            img, objects = _scene(rng, image_size, 1, min_objects=1)
            if not objects or objects[0][0] != CLASSES[made % len(CLASSES)]:
                continue  # keep the classes balanced
            cv2.imwrite(
                osp.join(out_dir, split, objects[0][0], f'{made:06d}.png'),
                img)
            made += 1
    return CLASSES
