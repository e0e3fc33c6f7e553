"""The Recommender and Admin servicers: translate, delegate, translate back."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from serving.api import conversions as convert
from serving.app.admin import AdminService
from serving.app.feedback import FeedbackService
from serving.app.items import ItemService
from serving.app.recommender import RecommenderService


class RecommenderServicer(pb_grpc.RecommenderServicer):
    def __init__(
        self, recommender: RecommenderService, feedback: FeedbackService, items: ItemService
    ) -> None:
        self._recommender = recommender
        self._feedback = feedback
        self._items = items

    async def Recommend(
        self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendResponse:
        recommendation = await self._recommender.recommend(convert.query_from_proto(request))
        return convert.recommendation_to_proto(recommendation)

    async def LogFeedback(
        self, request: pb.LogFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.LogFeedbackResponse:
        events = convert.events_from_proto(request, datetime.now(UTC))
        result = await self._feedback.log_feedback(events)
        return pb.LogFeedbackResponse(accepted=result.accepted, duplicates=result.duplicates)

    async def UpsertItems(
        self, request: pb.UpsertItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertItemsResponse:
        upserted = await self._items.upsert_items(convert.items_from_proto(request))
        return pb.UpsertItemsResponse(upserted=upserted)

    async def SimilarItems(
        self, request: pb.SimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SimilarItemsResponse:
        similar = await self._recommender.similar(convert.similar_from_proto(request))
        return convert.similar_to_proto(similar)

    async def DeleteItems(
        self, request: pb.DeleteItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteItemsResponse:
        deleted = await self._items.delete_items(list(request.item_ids))
        return pb.DeleteItemsResponse(deleted=deleted)

    async def ForgetUser(
        self, request: pb.ForgetUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.ForgetUserResponse:
        deleted = await self._feedback.forget_user(request.user_id)
        return pb.ForgetUserResponse(deleted_events=deleted)

    async def MergeSession(
        self, request: pb.MergeSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.MergeSessionResponse:
        merged = await self._feedback.merge_session(request.session_id, request.user_id)
        return pb.MergeSessionResponse(merged_events=merged)


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, service: AdminService) -> None:
        self._service = service

    async def GetParameters(
        self, request: pb.GetParametersRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetParametersResponse:
        version = await self._service.get()
        return pb.GetParametersResponse(current=convert.parameter_version_to_proto(version))

    async def UpdateParameters(
        self, request: pb.UpdateParametersRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateParametersResponse:
        version = await self._service.update(
            convert.parameters_from_proto(request.parameters),
            request.update_mask,
            request.changed_by,
            request.reason,
        )
        return pb.UpdateParametersResponse(current=convert.parameter_version_to_proto(version))

    async def ListParameterHistory(
        self, request: pb.ListParameterHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListParameterHistoryResponse:
        versions = await self._service.history(request.limit)
        return pb.ListParameterHistoryResponse(
            versions=[convert.parameter_version_to_proto(v) for v in versions]
        )

    async def RollbackParameters(
        self, request: pb.RollbackParametersRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackParametersResponse:
        version = await self._service.rollback(request.version, request.changed_by, request.reason)
        return pb.RollbackParametersResponse(current=convert.parameter_version_to_proto(version))

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateExperimentResponse:
        record = await self._service.create_experiment(
            request.name,
            convert.variants_from_proto(request.variants),
            request.changed_by,
            request.reason,
        )
        return pb.CreateExperimentResponse(experiment=convert.experiment_to_proto(record))

    async def AllocateExperiment(
        self, request: pb.AllocateExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AllocateExperimentResponse:
        record = await self._service.allocate(
            request.name, dict(request.shares), request.changed_by, request.reason
        )
        return pb.AllocateExperimentResponse(experiment=convert.experiment_to_proto(record))

    async def StopExperiment(
        self, request: pb.StopExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopExperimentResponse:
        record = await self._service.stop_experiment(
            request.name, request.changed_by, request.reason
        )
        return pb.StopExperimentResponse(experiment=convert.experiment_to_proto(record))

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExperimentsResponse:
        records = await self._service.experiments()
        return pb.ListExperimentsResponse(
            experiments=[convert.experiment_to_proto(r) for r in records]
        )

    async def PreviewParameters(
        self, request: pb.PreviewParametersRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewParametersResponse:
        # No parameters at all: the current policy itself (what its logs say of it).
        changed = request.HasField("parameters")
        preview = await self._service.preview(
            convert.parameters_from_proto(request.parameters, request.update_mask)
            if changed
            else {},
            list(request.update_mask),
            request.hours,
            request.sample,
            list(request.user_ids),
        )
        return convert.preview_to_proto(preview)
