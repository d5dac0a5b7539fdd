"""The gateway from a Python backend with Google's SDK (pip install google-genai); see docs/gateway.md.

    BYOK_URL=https://your-app BYOK_SERVICE_CREDENTIAL=bks_... BYOK_USER=user_... python examples/gateway/python_google_genai.py

The SDK gets a placeholder key: the service adds the user's own stored key. Not run by the tests.
"""
import os

from google import genai
from google.genai import types

base_url = os.environ.get("BYOK_URL", "http://localhost:3000")
headers = {}
if os.environ.get("BYOK_SERVICE_CREDENTIAL"):
    headers = {
        "Authorization": "Bearer " + os.environ["BYOK_SERVICE_CREDENTIAL"],
        "x-byok-user": os.environ["BYOK_USER"],
    }
elif os.environ.get("BYOK_TOKEN"):
    headers = {"Authorization": "Bearer " + os.environ["BYOK_TOKEN"]}

client = genai.Client(
    api_key="unused-the-service-adds-the-key",
    http_options=types.HttpOptions(base_url=base_url + "/api/gateway/gemini", headers=headers),
)
for chunk in client.models.generate_content_stream(
    model="gemini-3.5-flash",
    contents="Write a one-line tagline for an app whose users bring their own AI keys.",
    config=types.GenerateContentConfig(max_output_tokens=256),
):
    print(chunk.text or "", end="")
print()
