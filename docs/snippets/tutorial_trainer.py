# A step of docs/tutorial.md; tests/test_docs.py runs the steps in order.
# ruff: noqa: F821 (names from the previous steps)
# --8<-- [start:code]
from torchvae import (
    VAE,
    Decoder,
    Encoder,
    ModelCheckpoint,
    TensorBoardLogger,
    Trainer,
)

model = VAE(Encoder(784, 400, 200), Decoder(200, 400, 784))
trainer = Trainer(  # Adam(lr=1e-3) and ELBOLoss() by default
    model,
    callbacks=[TensorBoardLogger("runs/vae"), ModelCheckpoint("checkpoints")],
)
trainer.fit(train_loader, val=test_loader, epochs=30)
print(trainer.evaluate(test_loader))  # -ELBO, its parts, bits/dim
# --8<-- [end:code]
