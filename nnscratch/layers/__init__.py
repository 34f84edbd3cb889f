"""Layers with hand-written forward and backward passes (see ``base.Layer`` for the contract)."""

from nnscratch.layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from nnscratch.layers.base import Layer
from nnscratch.layers.blur import GaussianBlur
from nnscratch.layers.conv import Conv2D
from nnscratch.layers.conv_transpose import Conv2DTranspose
from nnscratch.layers.dense import Dense
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.flatten import Flatten, Reshape
from nnscratch.layers.pooling import AvgPool2D, MaxPool2D

__all__ = ["Layer", "Dense", "Conv2D", "Conv2DTranspose", "MaxPool2D", "AvgPool2D", "ReLU",
           "LeakyReLU", "Tanh", "Sigmoid", "Dropout", "Flatten", "Reshape", "GaussianBlur"]
