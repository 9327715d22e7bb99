"""A few registry entries the demo publishes, so its Registry view has something to find."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import PUBLISH
from flow_memory.registry import repository, service
from flow_memory.registry.schemas import AgentCreate, ModelCreate, SolutionCreate


def _model(publisher: str) -> dict[str, Any]:
    return {
        "slug": f"{publisher}/orchestrator-8b",
        "display_name": "Orchestrator 8B",
        "description": "A chat model tuned for planning and tool use; the demo market sells "
        "capacity for it as flow-memory-orchestrator.",
        "tags": ["chat", "planning", "tools"],
        "license": "apache-2.0",
        "pricing": {"model": "per_token", "price": "0.0000008"},
        "royalty_bps": 250,
        "model": {
            "modality": "chat",
            "compatible_api": ["chat_completions", "responses"],
            "context_window": 32768,
            "tool_calling": True,
            "family": "orchestrator",
        },
    }


def _agent(publisher: str) -> dict[str, Any]:
    return {
        "slug": f"{publisher}/research-assistant",
        "display_name": "Research assistant",
        "description": "Reads sources, keeps notes and answers with citations.",
        "tags": ["research", "citations"],
        "license": "mit",
        "pricing": {"model": "per_request", "price": "0.002"},
        "royalty_bps": 500,
        "agent": {
            "requirements": {
                "apis": ["chat_completions"],
                "min_context_window": 16000,
                "tool_calling": True,
            },
            "config_template": {
                "system_prompt": "You are a careful research assistant. Cite every claim.",
                "parameters": {"temperature": 0.2},
                "tools": [{"name": "search_notes", "description": "searches the notes kept"}],
            },
        },
    }


def seed_examples(session: Session, *, publisher_id: str, now: datetime) -> None:
    """Publish a model, an agent that fits it, and the solution pairing them (once: a demo
    started again on its database keeps what it published)."""
    if repository.entry_by_slug(session, f"{publisher_id}/research-kit") is not None:
        return
    principal = Principal(key_id="demo", owner_id=publisher_id, scopes=frozenset({PUBLISH}))
    model = ModelCreate.model_validate(_model(publisher_id))
    agent = AgentCreate.model_validate(_agent(publisher_id))
    service.publish_entry(session, principal=principal, kind="model", body=model, now=now)
    service.publish_entry(session, principal=principal, kind="agent", body=agent, now=now)
    solution = SolutionCreate.model_validate(
        {
            "slug": f"{publisher_id}/research-kit",
            "display_name": "Research kit",
            "description": "The research assistant on Orchestrator 8B, ready to deploy.",
            "tags": ["research"],
            "license": "mit",
            "royalty_bps": 100,
            "solution": {
                "agent": {"slug": agent.slug, "version": agent.version},
                "model": {"slug": model.slug, "version": model.version},
            },
        }
    )
    service.publish_entry(session, principal=principal, kind="solution", body=solution, now=now)
