"""Chat prompts: render a conversation with the model's own Jinja2 chat template."""

from __future__ import annotations

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Used only when a model carries no template: ChatML, the format SmolLM2 and Qwen use.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _raise(msg):
    raise TemplateError(msg)


class ChatTemplate:
    """A compiled chat template (sandboxed, like Hugging Face's apply_chat_template)."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self.source = source or CHATML
        self._t = env.from_string(self.source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self._t.render(messages=messages, add_generation_prompt=add_generation_prompt,
                              bos_token=self.bos_token, eos_token=self.eos_token)


def template_for(model) -> ChatTemplate:
    """The chat template stored in an edgerun.Model's file (ChatML if none)."""
    def tok_text(i):
        return model.detokenize([i], special=True) if i >= 0 else ""
    return ChatTemplate(model.chat_template, tok_text(model.bos_id), tok_text(model.eos_id))
