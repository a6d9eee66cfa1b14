import uuid

from django.db import migrations, models


def give_each_message_a_token(apps, schema_editor):
    Message = apps.get_model("demo_engine", "Message")
    for message in Message.objects.filter(stream_token__isnull=True).only("id").iterator():
        Message.objects.filter(id=message.id).update(stream_token=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("demo_engine", "0003_api_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="stream_token",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_each_message_a_token, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="message",
            name="stream_token",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="message",
            name="repetition_penalty",
            field=models.FloatField(default=1.0),
        ),
        migrations.AddField(
            model_name="message",
            name="frequency_penalty",
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name="message",
            name="presence_penalty",
            field=models.FloatField(default=0.0),
        ),
    ]
