from rest_framework import serializers


class InstanceCreateInput(serializers.Serializer):
    # The contract's names, as OctoPerf sends them; the size limit is the service's to enforce.
    userData = serializers.CharField(allow_blank=True, trim_whitespace=False)
    region = serializers.CharField(max_length=64)
    type = serializers.CharField(max_length=16)
    zone = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class InstanceDeleteInput(serializers.Serializer):
    instanceId = serializers.CharField(max_length=64)
