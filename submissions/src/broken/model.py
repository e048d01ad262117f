"""A small WaveNet: causal dilated convolutions with gated activations, residual and skip connections."""
import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    def __init__(self, channels_in, channels_out, kernel_size, dilation=1):
        super().__init__(channels_in, channels_out, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left_padding, 0)))


class ResidualBlock(nn.Module):
    def __init__(self, channels, dilation, mel_channels=80):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, 2, dilation=dilation)
        self.condition = nn.Conv1d(mel_channels, 2 * channels, 1)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x, mel):
        filter_, gate = (self.dilated(x) + self.condition(mel)).chunk(2, dim=1)
        h = torch.tanh(filter_) * torch.sigmoid(gate)
        return x + self.residual(h), self.skip(h)


class WaveNet(nn.Module):
    def __init__(self, channels=32, dilations=(1, 2, 4, 8, 16, 32, 64, 128), classes=256):
        super().__init__()
        self.embed = nn.Embedding(classes, channels)
        self.blocks = nn.ModuleList(ResidualBlock(channels, d) for d in dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, 1), nn.ReLU(), nn.Conv1d(channels, classes, 1))

    def forward(self, samples, mel):
        x = self.embed(samples).transpose(1, 2)
        skips = 0
        for block in self.blocks:
            x, skip = block(x, mel)
            skips = skips + skip
        return self.out(skips)
