# coding: utf-8
# A chapter script as the book lays them out: the parent folder on the path, then common.
import sys, os
sys.path.append(os.pardir)  # so that the files of the parent folder can be imported
import pickle
import numpy as np
from collections import OrderedDict
from common.layers import *


class SimpleConvNet:
    """conv - relu - pool - affine - relu - affine - softmax"""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01):
        filter_num, filter_size = conv_param['filter_num'], conv_param['filter_size']
        self.params = {'W1': weight_init_std * np.random.randn(filter_num, input_dim[0], filter_size, filter_size),
                       'b1': np.zeros(filter_num)}
        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'],
                                           conv_param['stride'], conv_param['pad'])
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x
