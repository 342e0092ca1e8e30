# Ablation: without the identity term, Y' = K3(X2) * sigmoid(Up(K2(T))).
_base_ = '../scnet50_8xb32_in1k.py'

model = dict(backbone=dict(with_identity=False))
