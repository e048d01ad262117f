"""Train the WaveNet on mu-law samples conditioned on upsampled log-mels."""
import torch
from torch import nn

from dataset import MelDataset
from model import WaveNet


def train(data_dir, epochs=20):
    model = WaveNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(MelDataset(data_dir), batch_size=8, shuffle=True)
    for epoch in range(epochs):
        for samples, mel, target in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(samples, mel), target)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: {loss.item():.3f}")
        torch.save(model.state_dict(), "checkpoints/wavenet.pt")


if __name__ == "__main__":
    train("data/train")
