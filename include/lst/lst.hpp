// SPDX-License-Identifier: MIT
/// @file lst.hpp
/// @brief Umbrella header: everything a user of lst needs, CPU backend included.
#pragma once

#include "config.hpp"
#include "fwd.hpp"

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/matrix_ref.hpp"
#include "core/memory_tracker.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"

#include "backends/cpu/cpu.hpp"

#include "core/random.hpp"
#include "init/initializers.hpp"

#include "nn/activation.hpp"
#include "nn/attention.hpp"
#include "nn/dropout.hpp"
#include "nn/embedding.hpp"
#include "nn/encoder_layer.hpp"
#include "nn/feed_forward.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/losses.hpp"
#include "nn/packed_sequences.hpp"
#include "nn/parameter_arena.hpp"
#include "nn/task_head.hpp"

#include "train/adamw.hpp"
#include "train/batch.hpp"
#include "train/checkpoint.hpp"
#include "train/clip.hpp"
#include "train/evaluate.hpp"
#include "train/interrupt.hpp"
#include "train/metrics.hpp"
#include "train/progress.hpp"
#include "train/schedule.hpp"
#include "train/sgd.hpp"
#include "train/shuffle.hpp"
#include "train/task_model.hpp"
#include "train/trainer.hpp"

#include "io/bert_config.hpp"
#include "io/glue.hpp"
#include "io/mapped_file.hpp"
#include "io/safetensors.hpp"

#include "models/bert_classifier.hpp"
#include "models/bert_encoder.hpp"
#include "models/bert_lst.hpp"
#include "side/ladder.hpp"
#include "side/layer_mask.hpp"
#include "side/lst_config.hpp"
#include "side/side_network.hpp"
