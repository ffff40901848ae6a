"""Dataset loaders (MNIST, CIFAR-10, text corpora): local files, then the embedded defaults."""
