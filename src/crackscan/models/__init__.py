"""Model builders found by name (timm / smp and crackscan's own), and pretrained weights."""
