"""The action table: wire name → handler."""

from __future__ import annotations

from herald.api import channel_actions, instance_actions, speech_actions
from herald.api.context import Action

ACTIONS: dict[str, Action] = {
    "StartAIAgentInstance": instance_actions.start_instance,
    "StopAIAgentInstance": instance_actions.stop_instance,
    "UpdateAIAgentInstance": instance_actions.update_instance,
    "DescribeAIAgentInstance": instance_actions.describe_instance,
    "ListAIAgentInstance": instance_actions.list_instances,
    "GenerateAIAgentCall": instance_actions.generate_call,
    "SendAIAgentSpeech": speech_actions.send_speech,
    "SendAIAgentText": speech_actions.send_text,
    "ListAIAgentDialogues": speech_actions.list_dialogues,
    "SendAIAgentDataChannelMessage": channel_actions.send_data_channel_message,
}
