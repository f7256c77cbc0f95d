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

#include "core/activation_kind.hpp"
#include "core/packed_sequences.hpp"
#include "core/row_table.hpp"

#include "ops/activation.hpp"
#include "ops/attention.hpp"
#include "ops/dropout.hpp"
#include "ops/embedding.hpp"
#include "ops/gate.hpp"
#include "ops/gather_rows.hpp"
#include "ops/gemm.hpp"
#include "ops/layer_norm.hpp"
#include "ops/linear.hpp"
#include "ops/losses.hpp"
#include "ops/packed_rows.hpp"
#include "ops/parallel.hpp"

#include "backends/cpu/cpu.hpp"

#include "core/initializers.hpp"
#include "core/random.hpp"

#include "nn/activation.hpp"
#include "nn/attention.hpp"
#include "nn/dropout.hpp"
#include "nn/embedding.hpp"
#include "nn/encoder_layer.hpp"
#include "nn/feed_forward.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/losses.hpp"
#include "nn/parameter_arena.hpp"
#include "nn/task_head.hpp"

#include "io/batch.hpp"
#include "train/adamw.hpp"
#include "train/checkpoint.hpp"
#include "train/clip.hpp"
#include "train/evaluate.hpp"
#include "train/interrupt.hpp"
#include "train/metrics.hpp"
#include "train/progress.hpp"
#include "train/schedule.hpp"
#include "train/sgd.hpp"
#include "train/shuffle.hpp"
#include "train/trainer.hpp"

#include "io/bert_config.hpp"
#include "io/glue.hpp"
#include "io/mapped_file.hpp"
#include "io/safetensors.hpp"

#include "models/backbone_shape.hpp"
#include "models/bert_encoder.hpp"

#include "init/structural_pruning.hpp"

#include "methods/bert_classifier.hpp"
#include "methods/lst/bert_lst.hpp"
#include "methods/lst/ladder.hpp"
#include "methods/lst/layer_mask.hpp"
#include "methods/lst/lst_config.hpp"
#include "methods/lst/side_network.hpp"
#include "methods/lst/tap_cache.hpp"
#include "methods/task_model.hpp"
