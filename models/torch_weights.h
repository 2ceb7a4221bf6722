// torch_weights.h — where a torch.save file keeps what lcam needs: the backbone's state_dict
// (possibly inside a checkpoint dict, under DataParallel's "module." prefixes, next to an
// optimizer's state) and the L-CAM attention (attnM.op.weight / attnM.op.bias). Names are
// compared with every "module" component removed ("state_dict.module.features.0.weight" ->
// "state_dict.features.0.weight"); the backbone is the one prefix P under which
// P+"features.0.weight" and P+"classifier.6.weight" (VGG) or P+"conv1.weight", P+"fc.weight"
// and P+"layer1.0.conv1.weight" (ResNet) exist. Its configuration is read off the shapes: VGG
// conv widths and max-pools from the features indices (one max-pool after the last conv, as
// in every torchvision VGG), hidden width and classes from the classifier; ResNet base width
// from conv1, blocks per stage from the layerS.B names, classes from fc.
#pragma once
#include <map>     // std::map
#include <string>  // std::string

#include "loaders/torch_file.h"  // pth::Reader
#include "models/model.h"        // ModelConfig

namespace lcam {

struct TorchBackbone {
  ModelConfig config;
  std::map<std::string, std::string> names;  // torchvision name -> name in the file
};

// InputError naming the file when it holds no backbone, or more than one.
TorchBackbone find_backbone(const pth::Reader& r);

struct TorchAttention {
  std::string weight, bias;  // names in the file
};
// InputError naming the file when it holds no attnM.op.weight / bias pair, or more than one.
TorchAttention find_attention(const pth::Reader& r);

}  // namespace lcam
