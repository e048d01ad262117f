"""Static evidence is read from code and notebook cells; comments, strings and half a model do not count."""
import nbformat

from grader.checks.static import architectures, find_evidence
from grader.code import CodeUnit, code_units
from tests.helpers import EVALUATE, MODEL, PREPROCESS

def kinds_found(units):
    return {kind for kind, findings in find_evidence(units).items() if findings}


def test_a_complete_submission_shows_every_kind():
    units = [CodeUnit("preprocess.py", PREPROCESS), CodeUnit("model.py", MODEL), CodeUnit("evaluate.py", EVALUATE)]
    evidence = find_evidence(units)
    assert kinds_found(units) == set(evidence)
    assert architectures(evidence["architecture"]) == {"WaveNet": True, "GAN": False, "VAE": False}
    mfcc = evidence["librosa_mfcc"][0]
    mfcc_line = next(n for n, line in enumerate(PREPROCESS.splitlines(), 1) if "feature.mfcc" in line)
    assert (mfcc.file, mfcc.line) == ("preprocess.py", mfcc_line)
    assert {f.what for f in evidence["augmentation"]} == {"pitch shift", "added random noise"}


def test_comments_strings_and_unused_imports_are_not_evidence():
    decoy = '''
import librosa  # librosa.feature.mfcc(y) would go here
from pesq import pesq
NOTE = "we use librosa.effects.pitch_shift and loss.backward() and torch.tanh(a) * torch.sigmoid(b)"
'''
    assert kinds_found([CodeUnit("decoy.py", decoy)]) == set()


def test_half_a_model_or_half_a_training_loop_is_not_enough():
    vae_without_reparameterisation = ("class Encoder(nn.Module):\n    def __init__(self):\n        self.net = nn.Linear(80, 16)\n"
                                      "class Decoder(nn.Module):\n    def __init__(self):\n        self.net = nn.Linear(16, 80)\n")
    evidence = find_evidence([CodeUnit("vae.py", vae_without_reparameterisation)])
    assert not any(architectures(evidence["architecture"]).values())
    vae = vae_without_reparameterisation + "def reparameterize(mu, logvar):\n    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)\n"
    assert architectures(find_evidence([CodeUnit("vae.py", vae)])["architecture"])["VAE"]
    assert kinds_found([CodeUnit("t.py", "loss.backward()\n")]) == set()
    assert "training_loop" in kinds_found([CodeUnit("t.py", "model.compile(optimizer='adam', loss='mse')\nmodel.fit(x, y)\n")])


def test_notebook_cells_and_unparsable_files(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("librosa.feature.mfcc is described here"),
        nbformat.v4.new_code_cell("%matplotlib inline\n!pip install librosa\nimport librosa\nm = librosa.feature.mfcc(y=y, sr=sr)"),
    ])
    nbformat.write(notebook, tmp_path / "work.ipynb")
    (tmp_path / "broken.py").write_text("def f(:\n    score = pesq(fs, ref, deg, 'wb')\n")
    units, unread, _ = code_units([tmp_path / "work.ipynb", tmp_path / "broken.py"], tmp_path)
    assert not unread
    evidence = find_evidence(units)
    assert [(f.file, f.line) for f in evidence["librosa_mfcc"]] == [("work.ipynb[cell 2]", 4)]
    assert evidence["pesq_or_snr"][0].what == "pesq() (file does not parse)"


def test_hostile_nesting_is_searched_as_text_and_long_chains_are_read():
    too_deep = "librosa.load(path)\nx = " + "-" * 100_000 + "1\n"  # the parser gives up (MemoryError)
    evidence = find_evidence([CodeUnit("deep.py", too_deep)])
    assert [f.what for f in evidence["librosa_load"]] == ["librosa.load (file does not parse)"]
    long_chain = "x = " + "a." * 900 + "feature.mfcc(y=y)\n"  # parses; deeper than Python's recursion limit allows
    assert [f.what for f in find_evidence([CodeUnit("chain.py", long_chain)])["librosa_mfcc"]] == ["librosa.feature.mfcc"]
    many_sums = "y = x" + " + 0.01 * np.random.randn(n)" * 800 + "\n"
    assert len(find_evidence([CodeUnit("sums.py", many_sums)])["augmentation"]) == 800


def test_data_posing_as_code_is_left_unread_and_named(tmp_path, monkeypatch):
    import grader.code as code

    (tmp_path / "huge.py").write_text("x = librosa.load(p)\n" * 150_000)  # 3 MB: parsing it takes about 0.8 GB
    for index in range(3):
        (tmp_path / f"part{index}.py").write_text("y = librosa.feature.mfcc(y=y)\n" * 1_000)
    monkeypatch.setattr(code, "MAX_CODE_BYTES", 70_000)  # room for two of the three parts
    units, unread, _ = code_units(sorted(tmp_path.glob("*.py")), tmp_path)
    assert [unit.name for unit in units] == ["part0.py", "part1.py"]
    assert unread == ["huge.py (over 2 MB: data rather than code)", "part2.py (past 0.07 MB of code in all)"]


def test_the_seeds_keras_vae_is_recognised():
    """The course's own Keras 2 CNN VAE (shared/seeds/003_*): its reparameterisation draws the noise first
    (``epsilon = K.random_normal(...)``), then ``K.exp(0.5 * z_log_var) * epsilon``."""
    keras_vae = '''
def sampling(args):
    z_mean, z_log_var = args
    epsilon = K.random_normal(shape=(K.shape(z_mean)[0], latent_dim),
    mean=0., stddev=1.)
    return z_mean + K.exp(0.5 * z_log_var) * epsilon

def encoder(input_shape, latent_dim):
    inputs = Input(shape=input_shape)
    z_mean = Dense(latent_dim)(inputs)
    z = Lambda(sampling, output_shape=(latent_dim,))([z_mean, z_log_var])
    return Model(inputs, [z_mean, z_log_var, z], name='encoder')

def decoder(input_shape, latent_dim):
    outputs = Conv2DTranspose(1, 3, padding='same', activation='sigmoid')(latent_inputs)
    return Model(latent_inputs, outputs, name='decoder')
'''
    evidence = find_evidence([CodeUnit("vae.ipynb[cell 7]", keras_vae)])
    assert architectures(evidence["architecture"])["VAE"] is True
    unrelated = "epsilon = K.random_normal((2,))\nscale = K.exp(0.5) * weight\n"
    assert not find_evidence([CodeUnit("other.py", unrelated)])["architecture"]
