# A step of docs/tutorial.md; tests/test_docs.py runs the steps in order.
# --8<-- [start:code]
from torchvae import mnist_loaders

# The chapter: datasets.MNIST(root="./MNIST_DATA/", transform=ToTensor()),
# DataLoader(batch_size=100, shuffle=True) to train, shuffle=False to test.
train_loader, test_loader = mnist_loaders(
    root="./MNIST_DATA/", batch_size=100, flatten=True, download=True
)
x, y = next(iter(train_loader))  # x: (100, 784) in [0, 1], y: (100,)
# --8<-- [end:code]
