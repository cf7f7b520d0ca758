"""Built-in backbones; importing this package registers them."""

from climatune.models.backbones.base import Backbone
from climatune.models.backbones.resnet import ResNet
from climatune.models.backbones.unet import UNet
from climatune.models.backbones.vartoken import VarTokenViT
from climatune.models.backbones.vit import ViT

__all__ = ["Backbone", "ResNet", "UNet", "VarTokenViT", "ViT"]
