# A step of docs/tutorial.md; tests/test_docs.py runs the steps in order.
# ruff: noqa: F821 (names from the previous steps)
# --8<-- [start:code]
from torchvision.utils import save_image

model.eval()
samples = model.sample(64)  # z ~ N(0, I), decoded: (64, 784) in [0, 1]
save_image(samples.view(64, 1, 28, 28), "samples.png", nrow=8)

x, _ = next(iter(test_loader))
recon = model.reconstruct(x[:8])  # decodes each posterior mean
path = model.interpolate(x[:1], x[1:2], steps=10)  # x[0] -> x[1]
# --8<-- [end:code]
