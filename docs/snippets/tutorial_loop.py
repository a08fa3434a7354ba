# A step of docs/tutorial.md; tests/test_docs.py runs the steps in order.
# ruff: noqa: F821 (names from the previous steps)
# --8<-- [start:code]
import torch
from tensorboardX import SummaryWriter

from torchvae import VAE, Decoder, ELBOLoss, Encoder

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = VAE(Encoder(784, 400, 200), Decoder(200, 400, 784)).to(device)
loss_fn = ELBOLoss()  # Bernoulli reconstruction + KL, nats per image
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
writer = SummaryWriter("runs/vae")

for epoch in range(1, 31):
    model.train()
    total, seen = 0.0, 0
    for x, _ in train_loader:
        x = x.to(device)
        loss = loss_fn(model(x), x)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        total, seen = total + loss.total.item() * len(x), seen + len(x)
    writer.add_scalar("loss/train", total / seen, epoch)  # one per epoch
    print(f"epoch {epoch}: {total / seen:.2f} nats per image")
writer.close()
# --8<-- [end:code]
