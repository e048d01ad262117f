# The code the assignment text gives every student ("Develop a Basic Audio Generative Model"): code pairs
# leave it out (grade similarity; the rubric's [similarity] starter). Add the course's own templates beside it.
import librosa
from pesq import pesq

signal, sr = librosa.load('audio_file.wav', sr=16000)
mfccs = librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)

model = WaveNetModel(layer_size=30, stack_size=5, dilations=[1, 2, 4, 8])
model.compile(optimizer='adam', loss='categorical_crossentropy')

score = pesq(fs, ref_signal, degraded_signal, 'wb')
score = pesq(fs, ref_signal, degraded_signal, 'nb')
